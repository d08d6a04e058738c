"""Crawlee for Python's ``PlaywrightCrawler`` on the bench's scripted site (``scripts/bench
--render --vs crawlee-browser``), run from its own throwaway venv; not part of the package.

It renders every page in the same Chromium binary trio-crawler uses (``--chromium``:
Playwright's ``executable_path``; no browser of Playwright's own is downloaded), as many
pages at once as trio-crawler's ``--render-concurrency`` (``--concurrency``), follows the
links of the rendered DOM within the host, obeys robots.txt, and writes one JSON line per
page (``url``, ``status``) and its statistics (``requests``) as JSON.

    python bench_crawlee_browser.py START_URL OUT.jsonl STATS.json --chromium PATH -c 4
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
from pathlib import Path

from crawlee import ConcurrencySettings
from crawlee.crawlers import PlaywrightCrawler, PlaywrightCrawlingContext


async def crawl(args: argparse.Namespace) -> tuple[list[dict[str, object]], int]:
    """The records of the pages crawled, and the requests made."""
    records: list[dict[str, object]] = []
    crawler = PlaywrightCrawler(
        headless=True,
        browser_type="chromium",
        browser_launch_options={"executable_path": args.chromium, "args": ["--no-sandbox"]},
        concurrency_settings=ConcurrencySettings(
            min_concurrency=args.concurrency,
            desired_concurrency=args.concurrency,
            max_concurrency=args.concurrency,
        ),
        respect_robots_txt_file=True,
        max_request_retries=2,
        request_handler_timeout=datetime.timedelta(seconds=60),
    )

    @crawler.router.default_handler
    async def handler(context: PlaywrightCrawlingContext) -> None:
        status = context.response.status if context.response else None
        records.append({"url": context.request.url, "status": status})
        await context.enqueue_links(strategy="same-hostname")

    stats = await crawler.run([args.start_url])
    return records, stats.requests_finished + stats.requests_failed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("start_url")
    parser.add_argument("out")
    parser.add_argument("stats")
    parser.add_argument("--chromium", required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("crawlee").setLevel(logging.WARNING)
    records, requests = asyncio.run(crawl(args))
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in records))
    Path(args.stats).write_text(json.dumps({"requests": requests}))


if __name__ == "__main__":
    main()
