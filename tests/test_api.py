"""The public API is deliberate: exactly these names, each importable and documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

import trio_crawler
import trio_crawler.testing
from trio_crawler.testing import open_site_server, site_from_links

PUBLIC = {
    "CrawlStats",
    "Crawler",
    "CrawlerError",
    "Drop",
    "Failure",
    "FailureKind",
    "FetchError",
    "Follow",
    "Headers",
    "Page",
    "Rendering",
    "Request",
    "Retry",
    "Settings",
    "SettingsError",
    "Spider",
    "SpiderError",
    "SpiderNotFound",
    "StateMismatch",
    "StoreError",
    "__version__",
    "crawl",
    "load_spider",
    "open_crawler",
    "register",
    "start_crawler",
}


def test_exported_names_are_the_intended_ones() -> None:
    assert set(trio_crawler.__all__) == PUBLIC
    assert trio_crawler.__all__ == sorted(trio_crawler.__all__)
    for name in PUBLIC - {"__version__"}:
        assert getattr(trio_crawler, name).__doc__, name


def test_testing_module_is_public_and_documented() -> None:
    for name in trio_crawler.testing.__all__:
        assert getattr(trio_crawler.testing, name).__doc__ or name.endswith("Handler"), name


def test_package_is_typed() -> None:
    assert (Path(trio_crawler.__file__).parent / "py.typed").exists()


def test_error_tree() -> None:
    for cls in (
        trio_crawler.SettingsError,
        trio_crawler.SpiderNotFound,
        trio_crawler.StoreError,
        trio_crawler.StateMismatch,
        trio_crawler.FetchError,
    ):
        assert issubclass(cls, trio_crawler.CrawlerError)
    assert issubclass(trio_crawler.StateMismatch, trio_crawler.StoreError)


async def test_progress_lines_and_json_logs_when_not_a_terminal(tmp_path: Path) -> None:
    site = site_from_links({"/": [f"/p{i}" for i in range(30)] + ["/missing"]})
    site.default = trio_crawler.testing.Response(body=b"<p>x</p>", delay=0.05)
    site.add("/missing", trio_crawler.testing.Response(status=404))
    async with open_site_server(site) as server:
        with trio.fail_after(60):
            result = await trio.run_process(
                [
                    sys.executable,
                    "-m",
                    "trio_crawler",
                    "crawl",
                    server.url("/"),
                    "-o",
                    str(tmp_path / "out.jsonl"),
                    "--delay",
                    "0",
                    "-c",
                    "1",
                    "--progress-interval",
                    "0.3",
                    "--log-json",
                    "-v",
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    err = result.stderr.decode()
    assert result.returncode == 0, err
    # --log-json: standard error is JSON objects only, progress and summary included
    logs = [json.loads(line) for line in err.splitlines()]
    assert any(entry["logger"].startswith("trio_crawler.engine") for entry in logs), err
    assert any("/missing" in entry["message"] for entry in logs)  # errors name the URL
    progress = [entry for entry in logs if entry["message"] == "progress"]
    assert progress and "pages_per_second" in progress[0]["stats"]  # periodic, not live
    (summary,) = [entry for entry in logs if entry["message"] == "crawl summary"]
    assert summary["stats"]["failures"] == {"http_status": 1}


def test_module_entry_point_matches_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_crawler", "--version"], capture_output=True, text=True
    )
    assert result.stdout.startswith("trio-crawler ")
