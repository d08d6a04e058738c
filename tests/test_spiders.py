"""The built-in spiders against fixture pages in the real sites' structure (no network).

Unit tests build :class:`Page` objects directly and collect what ``scrape`` yields; the
end-to-end tests at the bottom serve the same fixtures on loopback and run the engine.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from spider_fixtures import (
    CVEDETAILS_LIST,
    GITHUB_RATE_LIMITED,
    JSON,
    SAMPLE_QUOTES,
    CveRow,
    broken_cve_block,
    cve_block,
    cvedetails_detail_page,
    cvedetails_list_page,
    cvedetails_old_detail_page,
    cvedetails_page_href,
    github_json,
    github_link_header,
    github_member,
    github_members,
    github_rate_headers,
    make_page,
    old_table_page,
    old_table_row,
    quote_as_shown,
    quotes_html_page,
    quotes_js_page,
)

import trio_crawler
from trio_crawler._exceptions import CrawlerError, FailureKind, SettingsError
from trio_crawler._settings import Settings
from trio_crawler._spider import Failure, Request, Spider, iterate_result, spider_names
from trio_crawler.spiders import _shared, cvedetails, github, quotes
from trio_crawler.spiders._shared import ParseError
from trio_crawler.spiders.cvedetails import Cve, CveDetailsSpider
from trio_crawler.spiders.github import GithubSpider, Member, parse_link_header
from trio_crawler.spiders.quotes import Quote, QuotesSpider, cut_array
from trio_crawler.testing import (
    RecordedRequest,
    Response,
    Site,
    loopback_settings,
    open_site_server,
)

CVE_SITE = "https://www.cvedetails.com"
API = "https://api.github.com"
QUOTES = "https://quotes.toscrape.com"


async def collect(result: Any) -> list[Any]:
    return [value async for value in iterate_result(result)]


def split(values: list[Any]) -> tuple[list[Any], list[Request], list[ParseError]]:
    items = [v for v in values if not isinstance(v, (Request, ParseError))]
    requests = [v for v in values if isinstance(v, Request)]
    problems = [v for v in values if isinstance(v, ParseError)]
    return items, requests, problems


# ---------------------------------------------------------------- registry and arguments


def test_registry_lists_the_three_spiders_with_descriptions() -> None:
    names = spider_names()
    assert names["cvedetails"] is CveDetailsSpider
    assert names["github"] is GithubSpider
    assert names["quotes"] is QuotesSpider
    for cls in (CveDetailsSpider, GithubSpider, QuotesSpider):
        assert cls.description and "\n" not in cls.description
        assert cls.args and all(help_text for help_text in cls.args.values())
        assert "base_url" in cls.args


@pytest.mark.parametrize("spider", [CveDetailsSpider, GithubSpider, QuotesSpider])
def test_custom_settings_are_real_settings(spider: type[Spider]) -> None:
    Settings().replace(**spider.custom_settings)  # raises on an unknown or invalid field


@pytest.mark.parametrize("org", ["bad org", "-lead", "a" * 40, "../orgs", "python?page=2", ""])
def test_bad_org_name_is_a_one_line_settings_error(org: str) -> None:
    with pytest.raises(SettingsError) as caught:
        GithubSpider(org=org)
    assert "org" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("org", ["python", "google", "Microsoft", "a", "x-y-z", "a" * 39])
def test_good_org_names_pass(org: str) -> None:
    assert GithubSpider(org=org).org == org


@pytest.mark.parametrize("spider", [CveDetailsSpider, GithubSpider, QuotesSpider])
def test_unknown_argument_is_a_one_line_error(spider: type[Spider]) -> None:
    with pytest.raises(CrawlerError) as caught:
        spider(colour="blue")
    assert "colour" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("spider", "kwargs"),
    [
        (QuotesSpider, {"mode": "browser"}),
        (CveDetailsSpider, {"details": "maybe"}),
        (CveDetailsSpider, {"base_url": "ftp://www.cvedetails.com"}),
        (GithubSpider, {"base_url": "api.github.com"}),
        (QuotesSpider, {"base_url": "https://quotes.toscrape.com/?x=1"}),
        (CveDetailsSpider, {"base_url": "http://127.0.0.1:port/"}),
    ],
)
def test_bad_argument_values_are_one_line_settings_errors(
    spider: type[Spider], kwargs: dict[str, str]
) -> None:
    with pytest.raises(SettingsError) as caught:
        spider(**kwargs)
    assert "\n" not in str(caught.value)


SPIDER_MODULES = ("cvedetails", "generic", "github", "quotes")


@pytest.mark.parametrize("name", SPIDER_MODULES)
def test_no_spider_imports_another(name: str) -> None:
    """What spiders share lives in ``spiders/_shared.py``: a spider module imports no sibling."""
    source = Path(_shared.__file__).with_name(f"{name}.py").read_text()
    siblings = set(SPIDER_MODULES) - {name}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            assert node.module == "_shared" or node.module is None, node.module
            if node.module is None:
                assert not {alias.name for alias in node.names} & siblings


def test_defaults_start_at_the_real_sites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert list(CveDetailsSpider().start_requests()) == [f"{CVE_SITE}{CVEDETAILS_LIST}"]
    assert list(QuotesSpider().start_requests()) == [f"{QUOTES}/js/"]
    assert list(QuotesSpider(mode="html").start_requests()) == [f"{QUOTES}/"]
    [start] = GithubSpider().start_requests()
    assert isinstance(start, Request)
    assert start.url == f"{API}/orgs/google/public_members?per_page=100"
    assert start.headers == {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }


def test_base_url_moves_every_start_url() -> None:
    base = "http://127.0.0.1:8123/"
    assert list(CveDetailsSpider(base_url=base).start_requests()) == [
        f"http://127.0.0.1:8123{CVEDETAILS_LIST}"
    ]
    assert list(QuotesSpider(base_url=base).start_requests()) == ["http://127.0.0.1:8123/js/"]
    [start] = GithubSpider(base_url=base, org="python").start_requests()
    assert isinstance(start, Request)
    assert start.url == "http://127.0.0.1:8123/orgs/python/public_members?per_page=100"


# ---------------------------------------------------------------- cvedetails: list pages


def list_url(number: int = 1) -> str:
    return CVE_SITE + (CVEDETAILS_LIST if number == 1 else cvedetails_page_href(number))


async def test_cvedetails_current_layout_items_and_pager(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        CveRow("CVE-2024-3400", summary="OS command injection in GlobalProtect.", score="10.0"),
        CveRow("CVE-2024-0001", score="N/A", cwe="79"),
    ]
    hrefs = [cvedetails_page_href(n) for n in (1, 2, 3)]
    body = cvedetails_list_page([cve_block(r) for r in rows], page_hrefs=hrefs, current=2)
    page = make_page(list_url(2), body)

    with caplog.at_level(logging.WARNING):
        items, requests, problems = split(await collect(CveDetailsSpider().scrape(page)))

    assert items == [
        Cve(
            cve_id="CVE-2024-3400",
            url=f"{CVE_SITE}/cve/CVE-2024-3400/",
            summary="OS command injection in GlobalProtect.",
            published="2024-04-12",
            updated="2024-04-19",
            cvss_score=10.0,
        ),
        Cve(
            cve_id="CVE-2024-0001",
            url=f"{CVE_SITE}/cve/CVE-2024-0001/",
            summary="A vulnerability allows remote attackers to do bad things.",
            published="2024-04-12",
            updated="2024-04-19",
            cvss_score=None,
            cwe_id="CWE-79",
            cwe_url=f"{CVE_SITE}/cwe-details/79/",
        ),
    ]
    assert problems == []
    # The pager's links but page 1 (the start URL under another name); the numbered link and
    # the arrow to page 3 give one request. The site's navigation links are not followed.
    assert [r.url for r in requests] == [list_url(3)]
    assert not caplog.records


async def test_cvedetails_broken_block_becomes_a_parse_error_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = cvedetails_list_page([cve_block(CveRow("CVE-2023-1111")), broken_cve_block()])
    page = make_page(list_url(), body)

    with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.cvedetails"):
        items, _, problems = split(await collect(CveDetailsSpider().scrape(page)))

    assert [i.cve_id for i in items] == ["CVE-2023-1111"]
    [problem] = problems
    assert problem.url == list_url() and "block 2" in problem.reason
    assert any(list_url() in r.getMessage() for r in caplog.records)


async def test_cvedetails_old_table_layout_is_still_parsed() -> None:
    rows = [
        CveRow("CVE-2019-0001", score="7.8", cwe="400", vuln_type="DoS", summary="Bad packet."),
        CveRow("CVE-2019-0002", score="4.3", impact=("Local", "Medium", "Single system")),
    ]
    hrefs = [f"/vulnerability-list.php?vendor_id=0&page={n}" for n in (1, 2)]
    body = old_table_page([old_table_row(r, i) for i, r in enumerate(rows, 1)], page_hrefs=hrefs)

    items, requests, problems = split(
        await collect(CveDetailsSpider().scrape(make_page(list_url(), body)))
    )

    assert problems == []
    first, second = items
    assert first == Cve(
        cve_id="CVE-2019-0001",
        url=f"{CVE_SITE}/cve/CVE-2019-0001/",
        summary="Bad packet.",
        published="2024-04-12",
        updated="2024-04-19",
        cvss_score=7.8,
        cwe_id="CWE-400",
        cwe_url="https://www.cvedetails.com/cwe-details/400/cwe.html",
        vulnerability_type="DoS",
        access="Remote",
        complexity="Low",
        authentication="Not required",
        confidentiality="Partial",
        integrity="Partial",
        availability="Partial",
    )
    assert (second.cwe_id, second.cvss_score, second.access, second.availability) == (
        None,
        4.3,
        "Local",
        None,
    )
    assert [r.url for r in requests] == [f"{CVE_SITE}/vulnerability-list.php?vendor_id=0&page=2"]


async def test_cvedetails_short_old_row_is_a_parse_error() -> None:
    row = "<tr class='srrowns'><td>1</td><td><a href='/cve/CVE-2019-3/'>CVE-2019-3</a></td></tr>"
    body = old_table_page([row, old_table_row(CveRow("CVE-2019-0004"), 2)])

    items, _, problems = split(
        await collect(CveDetailsSpider().scrape(make_page(list_url(), body)))
    )

    assert [i.cve_id for i in items] == ["CVE-2019-0004"]
    assert len(problems) == 1 and "2 columns" in problems[0].reason


async def test_cvedetails_unknown_layout_reports_instead_of_succeeding_silently() -> None:
    page = make_page(list_url(), "<html><body><p>Redesigned!</p></body></html>")

    items, requests, problems = split(await collect(CveDetailsSpider().scrape(page)))

    assert (items, requests) == ([], [])
    assert len(problems) == 1 and problems[0].url == list_url()


# ---------------------------------------------------------------- cvedetails: details=1


async def test_cvedetails_details_follows_each_cve_with_the_list_item() -> None:
    body = cvedetails_list_page(
        [cve_block(CveRow("CVE-2023-25139", score="9.8"))],
        page_hrefs=[cvedetails_page_href(n) for n in (1, 2)],
    )
    values = await collect(CveDetailsSpider(details="1").scrape(make_page(list_url(), body)))

    items, requests, _ = split(values)
    assert items == []  # the item comes out of the detail page, completed
    detail, next_page = requests
    assert detail.url == f"{CVE_SITE}/cve/CVE-2023-25139/"
    assert detail.meta["cve"]["cvss_score"] == 9.8
    assert next_page.url == list_url(2)

    page = make_page(detail.url, cvedetails_detail_page("CVE-2023-25139"), meta=dict(detail.meta))
    [item] = await collect(CveDetailsSpider(details="1").scrape(page))

    assert item == Cve(
        cve_id="CVE-2023-25139",
        url=f"{CVE_SITE}/cve/CVE-2023-25139/",
        summary="A vulnerability allows remote attackers to do bad things.",  # the list's
        published="2024-04-12",
        updated="2024-04-19",
        cvss_score=9.8,  # the list's maximum, not the first table row
        cwe_id="CWE-787",
        cwe_url=f"{CVE_SITE}/cwe-details/787/Out-of-bounds-Write.html",
        vulnerability_type="Overflow, Memory Corruption",
        access="Network",  # from the first row with impact fields (CVSS 3.1)
        complexity="Low",
        authentication=None,  # v3 has no such field; not mixed in from the v2 row
        confidentiality="None",
        integrity="None",
        availability="High",
    )


async def test_cvedetails_detail_page_on_its_own() -> None:
    url = f"{CVE_SITE}/cve/CVE-2022-0001/"
    page = make_page(url, cvedetails_detail_page("CVE-2022-0001", cwe=None, categories=()))

    [item] = await collect(CveDetailsSpider().scrape(page))

    assert isinstance(item, Cve)
    assert (item.cve_id, item.url, item.summary) == (
        "CVE-2022-0001",
        url,
        "Out-of-bounds write in the parser.",
    )
    assert (item.published, item.updated, item.cvss_score) == ("2023-02-03", "2023-03-02", 7.5)
    assert (item.cwe_id, item.vulnerability_type) == (None, None)


async def test_cvedetails_failed_detail_still_yields_the_list_item() -> None:
    known = Cve(cve_id="CVE-2021-44228", url=f"{CVE_SITE}/cve/CVE-2021-44228/", cvss_score=10.0)

    failure = Failure(
        request=Request(url=known.url, meta={"cve": dataclasses.asdict(known)}),
        kind=FailureKind.HTTP_STATUS,
        message="503",
        status=503,
    )
    spider = CveDetailsSpider(details="1")
    assert await collect(spider.failed(failure)) == [known]
    other = Failure(request=Request(url=list_url()), kind=FailureKind.TIMEOUT, message="slow")
    assert await collect(spider.failed(other)) == []


async def test_cvedetails_failed_detail_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    known = Cve(cve_id="CVE-2021-44228", url=f"{CVE_SITE}/cve/CVE-2021-44228/")
    failure = Failure(
        request=Request(url=known.url, meta={"cve": dataclasses.asdict(known)}),
        kind=FailureKind.HTTP_STATUS,
        message="503 after 3 tries",
        status=503,
    )
    with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.cvedetails"):
        assert await collect(CveDetailsSpider(details="1").failed(failure)) == [known]
    [record] = caplog.records
    assert known.url in record.getMessage() and "HTTP 503" in record.getMessage()


@pytest.mark.parametrize(
    ("url", "status", "kind", "said"),
    [
        (list_url(), 404, FailureKind.HTTP_STATUS, "start page"),
        (list_url(3), 500, FailureKind.HTTP_STATUS, "list page"),
        (list_url(), None, FailureKind.DNS, "start page"),
    ],
)
async def test_cvedetails_failed_list_page_is_a_warning_naming_url_and_status(
    caplog: pytest.LogCaptureFixture, url: str, status: int | None, kind: FailureKind, said: str
) -> None:
    failure = Failure(request=Request(url=url), kind=kind, message="gone", status=status)
    with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.cvedetails"):
        assert await collect(CveDetailsSpider().failed(failure)) == []
    [record] = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert said in message and url in message
    assert (f"HTTP {status}" if status else str(kind)) in message


# ---------------------------------------------------------------- cvedetails: both detail layouts

HEARTBLEED = f"{CVE_SITE}/cve/CVE-2014-0160/"


async def test_cvedetails_old_layout_detail_page_is_read_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    page = make_page(HEARTBLEED, cvedetails_old_detail_page("CVE-2014-0160"))

    with caplog.at_level(logging.WARNING):
        [item] = await collect(CveDetailsSpider().scrape(page))

    assert item == Cve(
        cve_id="CVE-2014-0160",
        url=HEARTBLEED,
        summary="Buffer over-read in the heartbeat extension discloses process memory.",
        published="2014-04-07",
        updated="2020-10-15",
        cvss_score=5.0,
        cwe_id="CWE-119",
        cwe_url="https://www.cvedetails.com/cwe-details/119/cwe.html",
        vulnerability_type="Overflow, +Info",
        access=None,  # the old CVE page has no access vector row (its list table has one)
        complexity="Low",
        authentication="Not required",
        confidentiality="Partial",
        integrity="None",
        availability="None",
    )
    assert not caplog.records


async def test_cvedetails_old_layout_detail_fills_only_the_gaps_of_the_list_item() -> None:
    listed = Cve(cve_id="CVE-2014-0160", url=HEARTBLEED, summary="From the list.", cvss_score=7.5)
    page = make_page(
        HEARTBLEED,
        cvedetails_old_detail_page("CVE-2014-0160", cwe=None, types=()),
        meta={"cve": dataclasses.asdict(listed)},
    )

    [item] = await collect(CveDetailsSpider(details="1").scrape(page))

    assert isinstance(item, Cve)
    assert (item.summary, item.cvss_score) == ("From the list.", 7.5)  # the list's win
    assert (item.complexity, item.confidentiality, item.published) == (
        "Low",
        "Partial",
        "2014-04-07",
    )
    assert (item.cwe_id, item.vulnerability_type) == (None, None)  # "not defined", no types


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            cvedetails_old_detail_page("CVE-2014-0160", score="", rows=()),
            "#cvssscorestable has no CVSS score nor impact row",
        ),
        (
            "<html><body><h1>Vulnerability Details : CVE-2014-0160</h1>"
            "<div id='cvedetailssummary'>Redesigned again.</div></body></html>",
            "no CVSS table",
        ),
    ],
)
async def test_cvedetails_detail_page_without_cvss_fields_says_so(
    caplog: pytest.LogCaptureFixture, body: str, reason: str
) -> None:
    page = make_page(HEARTBLEED, body)

    with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.cvedetails"):
        item, problem = await collect(CveDetailsSpider().scrape(page))

    assert isinstance(item, Cve) and item.cve_id == "CVE-2014-0160" and item.cvss_score is None
    assert isinstance(problem, ParseError) and problem.url == HEARTBLEED
    assert reason in problem.reason and "score" in problem.reason
    assert any(HEARTBLEED in r.getMessage() for r in caplog.records)


async def test_cvedetails_current_detail_page_says_nothing_more() -> None:
    page = make_page(HEARTBLEED, cvedetails_detail_page("CVE-2014-0160"))
    [item] = await collect(CveDetailsSpider().scrape(page))
    assert isinstance(item, Cve) and item.cvss_score == 7.5 and item.access == "Network"


# ---------------------------------------------------------------- github


def members_page(url: str, members: Any, *headers: tuple[str, str], status: int = 200) -> Any:
    return make_page(url, github_json(members), status=status, content_type=JSON, headers=headers)


NEXT = f"{API}/organizations/1342004/public_members?per_page=100&page=2"
LAST = f"{API}/organizations/1342004/public_members?per_page=100&page=5"


async def test_github_members_and_next_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    spider = GithubSpider(org="google")
    members = [*github_members(2), github_member("no-node", 7, node_id=False)]
    page = members_page(
        f"{API}/orgs/google/public_members?per_page=100",
        members,
        github_link_header(next=NEXT, last=LAST),
        *github_rate_headers(remaining=59, reset=1_700_000_000),
    )

    items, requests, problems = split(await collect(spider.scrape(page)))

    assert items == [
        Member(
            login="user-0",
            id=1000,
            node_id="MDQ6VXNlcj1000=",
            html_url="https://github.com/user-0",
            avatar_url="https://avatars.githubusercontent.com/u/1000?v=4",
        ),
        Member(
            login="user-1",
            id=1001,
            node_id="MDQ6VXNlcj1001=",
            html_url="https://github.com/user-1",
            avatar_url="https://avatars.githubusercontent.com/u/1001?v=4",
        ),
        Member(
            login="no-node",
            id=7,
            node_id=None,
            html_url="https://github.com/no-node",
            avatar_url="https://avatars.githubusercontent.com/u/7?v=4",
        ),
    ]
    assert problems == []
    [following] = requests
    assert following.url == NEXT  # the /organizations/<id>/ form, followed as given
    assert following.headers["Accept"] == "application/vnd.github+json"
    assert "Authorization" not in following.headers
    assert spider.rate_limit_delay(page) is None


async def test_github_last_page_has_no_next() -> None:
    page = members_page(LAST, github_members(3), github_link_header(prev=NEXT, first=NEXT))
    items, requests, _ = split(await collect(GithubSpider().scrape(page)))
    assert len(items) == 3 and requests == []


async def test_github_token_goes_only_to_the_api_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_example")
    spider = GithubSpider()
    [start] = spider.start_requests()
    assert isinstance(start, Request)
    assert start.headers["Authorization"] == "Bearer ghp_example"
    assert spider.request_headers(f"{API}:443/x")["Authorization"] == "Bearer ghp_example"

    elsewhere = "https://evil.example/organizations/1/public_members?page=2"
    page = members_page(LAST, [], github_link_header(next=elsewhere))
    [following] = await collect(spider.scrape(page))
    assert following.url == elsewhere and "Authorization" not in following.headers


async def test_github_unexpected_answers_are_parse_errors() -> None:
    spider = GithubSpider()
    not_found = members_page(LAST, {"message": "Not Found", "documentation_url": "x"})
    [problem] = await collect(spider.scrape(not_found))
    assert isinstance(problem, ParseError) and "Not Found" in problem.reason

    garbage = make_page(LAST, b"<html>oops</html>", content_type=JSON)
    [problem] = await collect(spider.scrape(garbage))
    assert isinstance(problem, ParseError) and "not JSON" in problem.reason

    mixed = members_page(LAST, [github_member("ok", 1), {"login": "x"}, "nope", None])
    items, _, problems = split(await collect(spider.scrape(mixed)))
    assert [m.login for m in items] == ["ok"]
    assert [p.reason for p in problems] == [f"entry {i} is not a member" for i in (1, 2, 3)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [f'<{NEXT}>; rel="next", <{LAST}>; rel="last"'],
            {"next": NEXT, "last": LAST},
        ),
        ([f"<{LAST}>;rel=last,<{NEXT}>;rel=next"], {"next": NEXT, "last": LAST}),
        ([f'<{NEXT}> ; rel = "Next" ; title="page; two"'], {"next": NEXT}),
        ([f'< {NEXT} >; rel="next prefetch"'], {"next": NEXT, "prefetch": NEXT}),
        ([f'<{LAST}>; rel="last"', f'<{NEXT}>; rel="next"'], {"next": NEXT, "last": LAST}),
        ([f'<{NEXT}>; rel="next", <{LAST}>; rel="next"'], {"next": NEXT}),
        ([f"<{NEXT}>; type=text/html"], {}),
        (["garbage", ""], {}),
        ([], {}),
    ],
)
def test_parse_link_header(values: list[str], expected: dict[str, str]) -> None:
    assert parse_link_header(values) == expected


def test_github_rate_limit_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_700_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)  # the clock the spider reads
    spider = GithubSpider()

    limited = members_page(
        LAST, GITHUB_RATE_LIMITED, *github_rate_headers(0, int(now) + 120), status=403
    )
    assert spider.rate_limit_delay(limited) == 121.0

    too_many = members_page(LAST, {"message": "slow down"}, ("retry-after", "30"), status=429)
    assert spider.rate_limit_delay(too_many) == 30.0
    at_once = members_page(LAST, {"message": "slow down"}, ("retry-after", "0"), status=429)
    assert spider.rate_limit_delay(at_once) == 1.0  # 0 would read as "not rate limited"

    # Retry-After wins over the window reset when both are given.
    both = members_page(
        LAST, {}, ("retry-after", "5"), *github_rate_headers(0, int(now) + 999), status=403
    )
    assert spider.rate_limit_delay(both) == 5.0

    dated = members_page(
        LAST, {}, ("retry-after", "Tue, 14 Nov 2023 22:14:20 GMT"), status=429
    )  # now + 1 minute
    assert spider.rate_limit_delay(dated) == pytest.approx(60.0)

    spent = members_page(LAST, [], *github_rate_headers(0, int(now) + 10))
    assert spider.rate_limit_delay(spent) == 11.0

    past_reset = members_page(LAST, [], *github_rate_headers(0, int(now) - 50))
    assert spider.rate_limit_delay(past_reset) == 1.0

    forbidden = members_page(LAST, {"message": "Must have admin rights"}, status=403)
    assert spider.rate_limit_delay(forbidden) is None
    with_quota = members_page(LAST, GITHUB_RATE_LIMITED, *github_rate_headers(3, 0), status=403)
    assert spider.rate_limit_delay(with_quota) is None
    assert spider.rate_limit_delay(members_page(LAST, [], *github_rate_headers(5, 0))) is None


def test_github_spider_settings() -> None:
    assert GithubSpider.accept == "json"
    assert GithubSpider.custom_settings["obey_robots"] is False
    assert GithubSpider.custom_settings["per_host_concurrency"] == 1


# ---------------------------------------------------------------- quotes


async def test_quotes_js_page_is_read_without_a_browser() -> None:
    page = make_page(f"{QUOTES}/js/", quotes_js_page(SAMPLE_QUOTES, next_href="/js/page/2/"))
    assert "\\u201c" in page.text and "\u201c" not in page.text  # escaped in the script

    items, requests, problems = split(await collect(QuotesSpider().scrape(page)))

    assert problems == []
    assert items == [
        Quote(text=quote_as_shown(q), author=q.author, tags=q.tags) for q in SAMPLE_QUOTES
    ]
    assert items[0].text.startswith("\u201cThe world") and items[0].text.endswith("thinking.\u201d")
    assert (
        items[2].text
        == '\u201cA day without sunshine is like, you know, "night"]; [sic] {really}.\u201d'
    )
    assert items[3].text == "\u201cDon't cry because it's over, smile because it happened.\u201d"
    assert [r.url for r in requests] == [f"{QUOTES}/js/page/2/"]


async def test_quotes_last_js_page_has_no_next() -> None:
    page = make_page(f"{QUOTES}/js/page/10/", quotes_js_page(SAMPLE_QUOTES[:1]))
    items, requests, _ = split(await collect(QuotesSpider().scrape(page)))
    assert len(items) == 1 and requests == []


async def test_quotes_html_mode() -> None:
    page = make_page(f"{QUOTES}/page/3/", quotes_html_page(SAMPLE_QUOTES, next_href="/page/4/"))

    items, requests, problems = split(await collect(QuotesSpider(mode="html").scrape(page)))

    assert problems == []
    assert items == [
        Quote(text=quote_as_shown(q), author=q.author, tags=q.tags) for q in SAMPLE_QUOTES
    ]
    assert [r.url for r in requests] == [f"{QUOTES}/page/4/"]


async def test_quotes_js_mode_falls_back_to_rendered_blocks() -> None:
    page = make_page(f"{QUOTES}/js/", quotes_html_page(SAMPLE_QUOTES[:2]))
    items, _, problems = split(await collect(QuotesSpider().scrape(page)))
    assert [q.author for q in items] == ["Albert Einstein", "J.K. Rowling"] and problems == []


@pytest.mark.parametrize(
    "script",
    [
        'var data = [{"text": "unterminated"',
        "var data = [{'text': 'single quotes are JavaScript, not JSON'}];",
        "var other = 1;",
    ],
)
async def test_quotes_bad_script_is_a_parse_error(script: str) -> None:
    page = make_page(f"{QUOTES}/js/", f"<html><body><script>{script}</script></body></html>")
    [problem] = await collect(QuotesSpider().scrape(page))
    assert isinstance(problem, ParseError) and problem.url == f"{QUOTES}/js/"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[1, [2, 3]];", "[1, [2, 3]]"),
        ('["a]", "b\\"]", {"c": "}"}] trailing ]', '["a]", "b\\"]", {"c": "}"}]'),
        ("['it\\'s ]'] x", "['it\\'s ]']"),
        ('["\\\\"] ]', '["\\\\"]'),
        ("[1, 2", None),
        ('["open', None),
    ],
)
def test_cut_array_respects_strings(source: str, expected: str | None) -> None:
    assert cut_array(source, 0) == expected


# ---------------------------------------------------------------- end to end, on loopback


def engine() -> Any:
    open_crawler = getattr(trio_crawler, "open_crawler", None)
    if open_crawler is None:
        pytest.skip("engine not landed")
    return open_crawler


def served(body: str | bytes, *headers: tuple[str, str], status: int = 200) -> Response:
    raw = body.encode() if isinstance(body, str) else body
    content_type = ("content-type", JSON if isinstance(body, bytes) else "text/html; charset=utf-8")
    return Response(status=status, body=raw, headers=(content_type, *headers))


async def test_e2e_github_pages_and_a_rate_limited_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_crawler = engine()
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_loopback")
    site = Site()
    tries: list[str] = []  # the rate limited page's targets, in order

    with trio.fail_after(20):
        async with open_site_server(site) as server:
            second = server.url("/organizations/1525981/public_members?per_page=100&page=2")

            def page_two(request: RecordedRequest) -> Response:
                tries.append(request.target)
                if len(tries) == 1:  # the first try is rate limited
                    return served(
                        github_json(GITHUB_RATE_LIMITED), ("retry-after", "0"), status=429
                    )
                return served(github_json(github_members(2, first_id=200, prefix="late")))

            site.add(
                "/orgs/python/public_members",
                served(github_json(github_members(3)), github_link_header(next=second)),
            )
            site.add("/organizations/1525981/public_members", page_two)
            spider = GithubSpider(base_url=server.url("").rstrip("/"), org="python")
            async with open_crawler(spider, loopback_settings(server)) as crawler:
                items = [item async for item in crawler.items()]
            stats = crawler.statistics()

    assert sorted(m.login for m in items) == ["late-0", "late-1", "user-0", "user-1", "user-2"]
    first, again = (r for r in server.requests if r.path.startswith("/organizations/"))
    assert again.time - first.time >= 0.9  # waited out the rate limit (a 1 s floor)
    assert "/robots.txt" not in server.paths()  # the spider does not obey robots.txt
    assert stats.pages_ok == 2 and stats.items == 5
    api_requests = [r for r in server.requests if r.path != "/robots.txt"]
    assert all(r.header("authorization") == "Bearer ghp_loopback" for r in api_requests)
    assert all(r.header("x-github-api-version") == "2022-11-28" for r in api_requests)


async def test_e2e_quotes_js_pages() -> None:
    open_crawler = engine()
    site = Site(
        {
            "/js/": quotes_js_page(SAMPLE_QUOTES[:2], next_href="/js/page/2/"),
            "/js/page/2/": quotes_js_page(SAMPLE_QUOTES[2:]),
        }
    )
    with trio.fail_after(20):
        async with open_site_server(site) as server:
            spider = QuotesSpider(base_url=server.url(""))
            async with open_crawler(spider, loopback_settings(server)) as crawler:
                items = [item async for item in crawler.items()]
            stats = crawler.statistics()

    assert sorted(q.author for q in items) == sorted(q.author for q in SAMPLE_QUOTES)
    assert stats.pages_ok == 2 and stats.items == len(SAMPLE_QUOTES)


async def test_e2e_cvedetails_pages_and_details() -> None:
    open_crawler = engine()
    pages = {
        1: [CveRow("CVE-2024-0001"), CveRow("CVE-2024-0002")],
        2: [CveRow("CVE-2024-0003", score="9.1")],
    }
    hrefs = [cvedetails_page_href(n) for n in pages]

    def listing(request: RecordedRequest) -> Response:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.target).query)
        number = int(query.get("page", ["1"])[0])
        blocks = [cve_block(row) for row in pages[number]]
        return served(cvedetails_list_page(blocks, page_hrefs=hrefs, current=number))

    site = Site({CVEDETAILS_LIST: listing})
    for rows in pages.values():
        for row in rows:
            site.add(f"/cve/{row.cve_id}/", served(cvedetails_detail_page(row.cve_id)))

    with trio.fail_after(20):
        async with open_site_server(site) as server:
            spider = CveDetailsSpider(base_url=server.url(""), details="1")
            async with open_crawler(spider, loopback_settings(server)) as crawler:
                items = [item async for item in crawler.items()]
            stats = crawler.statistics()

    assert sorted(c.cve_id for c in items) == ["CVE-2024-0001", "CVE-2024-0002", "CVE-2024-0003"]
    assert all(c.cwe_id == "CWE-787" and c.access == "Network" for c in items)
    assert {c.cve_id: c.cvss_score for c in items}["CVE-2024-0003"] == 9.1
    assert stats.items == 3
    assert server.count(CVEDETAILS_LIST) == 1  # page 1 once, not again as ?page=1&order=1
    assert not [t for t in server.paths() if "page=1&" in t]


async def test_e2e_cvedetails_details_in_both_layouts() -> None:
    """A recording made across the redesign: one CVE page in the old layout, one in the new."""
    open_crawler = engine()
    rows = [CveRow("CVE-2014-0160", score="5.0"), CveRow("CVE-2023-25139", score="9.8")]
    site = Site(
        {
            CVEDETAILS_LIST: served(cvedetails_list_page([cve_block(row) for row in rows])),
            "/cve/CVE-2014-0160/": served(cvedetails_old_detail_page("CVE-2014-0160")),
            "/cve/CVE-2023-25139/": served(cvedetails_detail_page("CVE-2023-25139")),
        }
    )
    with trio.fail_after(20):
        async with open_site_server(site) as server:
            spider = CveDetailsSpider(base_url=server.url(""), details="1")
            async with open_crawler(spider, loopback_settings(server)) as crawler:
                found = [item async for item in crawler.items()]

    items, _, problems = split(found)
    assert problems == []
    by_id = {item.cve_id: item for item in items}
    old, new = by_id["CVE-2014-0160"], by_id["CVE-2023-25139"]
    assert (old.cwe_id, old.complexity, old.authentication, old.confidentiality) == (
        "CWE-119",
        "Low",
        "Not required",
        "Partial",
    )
    assert old.vulnerability_type == "Overflow, +Info"
    assert (new.cwe_id, new.complexity, new.access, new.availability) == (
        "CWE-787",
        "Low",
        "Network",
        "High",
    )


async def test_e2e_cvedetails_start_page_404_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_crawler = engine()
    with trio.fail_after(20):
        async with open_site_server(Site()) as server:
            spider = CveDetailsSpider(base_url=server.url(""))
            with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.cvedetails"):
                async with open_crawler(spider, loopback_settings(server)) as crawler:
                    found = [item async for item in crawler.items()]
            stats = crawler.statistics()

    assert found == [] and stats.pages_failed == 1
    [record] = [r for r in caplog.records if r.name == "trio_crawler.spiders.cvedetails"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "start page" in message and spider.start_url in message and "HTTP 404" in message


def test_spider_modules_are_importable_as_examples() -> None:
    for module in (cvedetails, github, quotes):
        assert module.__doc__ and module.logger.name == module.__name__
