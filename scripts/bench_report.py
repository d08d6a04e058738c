"""How long the report of a big crawl takes to build, and how much memory.

Generates a synthetic crawl of ``--pages`` records (100,000 by default) in the generic
spider's format, as JSON Lines and as a ``--state`` file (the SQLite store's schema, its
items table filled, and its link graph: every URL's referrers, the first 20 with their link
text and a total, 100,000 out-of-scope URLs counted, 1,000 noindex pages listed), then times
``trio-crawler report`` on each in a fresh process and prints the wall time, that process'
peak RSS and the size of the HTML. The issue's bar: under 10 s and under 300 MB for 100,000
pages, and a file of about 2 MB at most.

    .venv/bin/python scripts/bench_report.py [--pages 100000] [--out bench-output]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import time

T0 = 1_700_000_000.0
SECTIONS = ("news", "docs", "blog", "shop", "wiki", "help", "about", "careers")


def records(pages: int, seed: int = 1) -> list[dict[str, object]]:
    """A crawl that looks like a real site's: one big host and a tail of others, lognormal
    sizes and times, some 404s, 5xx, DNS failures, robots.txt blocks, redirect chains,
    shared and missing titles."""
    rng = random.Random(seed)
    main = "https://www.example.com"
    hosts = [main] * 9 + [f"https://host{i}.example.net" for i in range(200)]
    out: list[dict[str, object]] = []
    urls: list[str] = []
    for i in range(pages):
        base = main if rng.random() < 0.9 else rng.choice(hosts)
        section = SECTIONS[i % len(SECTIONS)]
        url = f"{base}/{section}/article-{i}-{'x' * rng.randrange(0, 40)}.html"
        if rng.random() < 0.05:
            url += f"?page={rng.randrange(100)}&sort=date"
        referrer = rng.choice(urls) if urls else None
        urls.append(url)
        if len(urls) > 5000:
            urls = urls[-5000:]
        roll = rng.random()
        record: dict[str, object] = {
            "url": url,
            "final_url": url,
            "status": 200,
            "depth": min(12, int(math.log(i + 1))),
            "referrer": referrer,
            "content_type": "text/html",
            "size": int(rng.lognormvariate(10, 1)),
            "title": f"Article {i} about {section} | Example",
            "links": rng.randrange(5, 200),
            "fetch_time": round(rng.lognormvariate(-3, 0.8), 6),
            "truncated": False,
            "redirects": [],
            "error": None,
            "error_kind": None,
            "fetched_at": round(T0 + i * 0.03 + rng.random(), 3),
        }
        failure: tuple[int | None, str] | None = None
        if roll < 0.02:
            failure = (404, "http_status")
        elif roll < 0.025:
            failure = (503, "http_status")
        elif roll < 0.028:
            failure = (None, "dns")
        elif roll < 0.033:
            failure = (None, "robots")
        elif roll < 0.035:
            failure = (None, "timeout")
        elif roll < 0.05:
            hops = rng.randrange(1, 4)
            record["redirects"] = [url] + [f"{url}?hop={h}" for h in range(1, hops)]
            record["final_url"] = url.replace("https://", "https://m.") if hops == 3 else url + "/"
        elif roll < 0.08:
            record["title"] = "Example - Home"
        elif roll < 0.09:
            record["title"] = None
        elif roll < 0.095:
            record["content_type"] = "application/pdf"
            record["title"] = None
        if failure is not None:
            status, kind = failure
            record.update(
                status=status,
                content_type=None,
                size=0,
                title=None,
                links=0,
                fetch_time=0.0,
                error=f"HTTP {status}" if status else f"{kind}: failed",
                error_kind=kind,
            )
        out.append(record)
    return out


def write_jsonl(path: str, data: list[dict[str, object]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for record in data:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")


def write_state(path: str, data: list[dict[str, object]]) -> None:
    """A state file as the SQLite store leaves it (its schema; meta, stats and items)."""
    from trio_crawler._store.sqlite_db import _SCHEMA, FORMAT_VERSION

    if os.path.exists(path):
        os.remove(path)
    conn = sqlite3.connect(path)
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    crawl = {"seeds": ["https://www.example.com/"], "scope": "domain", "spider": "generic"}
    stats = {"pages_ok": sum(1 for r in data if not r["error_kind"]), "requests": len(data)}
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [
            ("format", str(FORMAT_VERSION)),
            ("crawl", json.dumps(crawl)),
            ("stats", json.dumps(stats)),
            ("created", str(T0)),
        ],
    )
    conn.executemany(
        "INSERT INTO items (page, seq, type, data) VALUES (?, 0, 'page_record', ?)",
        ((i, json.dumps(r, separators=(",", ":"))) for i, r in enumerate(data)),
    )
    write_graph(conn, data)
    conn.commit()
    conn.close()


def write_graph(conn: sqlite3.Connection, data: list[dict[str, object]], seed: int = 2) -> None:
    """The link graph the SQLite store keeps (``link_graph``): each URL linked from a
    Pareto-distributed number of pages (a few from most, thousands from some), its first 20
    referrers with a link text; out-of-scope URLs met a Zipf-like number of times."""
    from trio_crawler._graph import NOINDEX_KEPT, OUT_OF_SCOPE_KEPT, REFERRERS_KEPT
    from trio_crawler._store.sqlite_graph import target_id

    rng = random.Random(seed)
    urls = [str(r["url"]) for r in data]
    targets, links = [], []
    for url in urls:
        total = min(5000, int(rng.paretovariate(1.2)))
        key = target_id(url)
        targets.append((key, total))
        for _ in range(min(total, REFERRERS_KEPT)):
            source = urls[rng.randrange(len(urls))]
            links.append((key, source, f"Read more about {url.rsplit('/', 1)[-1][:40]}"))
    rng.shuffle(links)  # as a crawl commits them: targets interleaved
    conn.executemany("INSERT INTO graph_targets (id, total) VALUES (?, ?)", targets)
    conn.executemany("INSERT INTO graph_links (id, source, anchor) VALUES (?, ?, ?)", links)
    away = [
        (f"https://other{i % 5000}.example.org/page/{i}", max(1, int(1e5 / (i + 1) ** 1.1)))
        for i in range(OUT_OF_SCOPE_KEPT)
    ]
    conn.executemany("INSERT INTO graph_out_of_scope (url, times) VALUES (?, ?)", away)
    noindex = [(urls[rng.randrange(len(urls))], "noindex, nofollow") for _ in range(NOINDEX_KEPT)]
    conn.executemany("INSERT INTO graph_noindex (url, directives) VALUES (?, ?)", noindex)
    conn.executemany(
        "INSERT INTO graph_counts (name, n) VALUES (?, ?)",
        [
            ("oos_total", sum(n for _, n in away)),
            ("oos_distinct", len(away)),
            ("noindex_total", NOINDEX_KEPT * 3),
        ],
    )
    conn.execute("INSERT INTO meta (key, value) VALUES ('link_graph', 'all')")


# The peak is VmHWM (this process' own): ru_maxrss survives exec, so it would report the
# generating parent's size at the fork.
MEASURE = """
import json, sys, time
started = time.perf_counter()
from trio_crawler._cli import main
code = main(["report", sys.argv[1], "-o", sys.argv[2], "-q"])
seconds = time.perf_counter() - started
with open("/proc/self/status") as fh:
    hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
print(json.dumps({"code": code, "seconds": seconds, "peak_mb": hwm / 1024}))
"""


def measure(source: str, html: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, source, html],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    figures["html_mb"] = os.path.getsize(html) / 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    data = records(args.pages)
    jsonl = os.path.join(args.out, f"report-{args.pages}.jsonl")
    state = os.path.join(args.out, f"report-{args.pages}.db")
    write_jsonl(jsonl, data)
    write_state(state, data)
    del data
    print(
        f"generated {args.pages:,} records in {time.perf_counter() - started:.1f} s "
        f"({os.path.getsize(jsonl) / 1e6:.1f} MB of JSON Lines)"
    )
    print(f"{'source':<12} {'build s':>8} {'peak RSS MB':>12} {'HTML MB':>8}")
    # state+graph: the state file with its link graph (every broken link's referrers)
    for name, source in (("JSON Lines", jsonl), ("state+graph", state)):
        html = os.path.join(args.out, f"report-{args.pages}-{name.split()[0].lower()}.html")
        figures = measure(source, html)
        if figures["code"] != 0:
            sys.exit(f"the report of {source} failed")
        print(
            f"{name:<12} {figures['seconds']:>8.2f} {figures['peak_mb']:>12.0f} "
            f"{figures['html_mb']:>8.2f}"
        )


if __name__ == "__main__":
    main()
