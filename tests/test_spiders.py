"""The built-in spiders against fixture pages in the real sites' structure (no network).

Unit tests build :class:`Page` objects directly and collect what ``scrape`` yields; the
end-to-end tests at the bottom serve the same fixtures on loopback and run the engine, and the
GitHub rate-limit tests run the engine on Trio's autojump clock over an in-memory transport
(minutes of waiting in virtual time, no sockets).
"""

from __future__ import annotations

import ast
import dataclasses
import email.utils
import itertools
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from spider_fixtures import (
    CVEDETAILS_LIST,
    GITHUB_ABUSE_LIMITED,
    GITHUB_ADMIN_ONLY,
    GITHUB_NOT_ACCESSIBLE,
    GITHUB_RATE_LIMITED,
    GITHUB_SECONDARY_LIMITED,
    JSON,
    SAMPLE_QUOTES,
    CveRow,
    broken_cve_block,
    cve_block,
    cvedetails_detail_page,
    cvedetails_list_page,
    cvedetails_old_detail_page,
    cvedetails_page_href,
    github_date,
    github_headers,
    github_json,
    github_link_header,
    github_member,
    github_member_2012,
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
from trio_crawler._registry import spider_names
from trio_crawler._settings import Settings
from trio_crawler._spider import Failure, Request, Spider, iterate_result
from trio_crawler.spiders import _shared, cvedetails, github, quotes
from trio_crawler.spiders._shared import ParseError
from trio_crawler.spiders.cvedetails import Cve, CveDetailsSpider
from trio_crawler.spiders.github import (
    GithubSpider,
    Member,
    map_api_url,
    parse_link_header,
    parse_member,
    rate_limit_delay,
)
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
        (QuotesSpider, {"mode": "chrome"}),
        (CveDetailsSpider, {"details": "maybe"}),
        (CveDetailsSpider, {"base_url": "ftp://www.cvedetails.com"}),
        (GithubSpider, {"base_url": "api.github.com"}),
        (QuotesSpider, {"base_url": "https://quotes.toscrape.com/?x=1"}),
        (GithubSpider, {"base_url": "http://127.0.0.1:99999"}),
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
    assert [p.reason for p in problems] == [
        "member 1: missing 'id'",
        "member 2: expected an object, got a string",
        "member 3: expected an object, got null",
    ]
    assert all(p.url == LAST for p in problems)


def test_github_2012_member_has_no_html_url_and_is_still_a_member() -> None:
    assert parse_member(github_member_2012("mojombo", 1)) == Member(
        login="mojombo",
        id=1,
        node_id=None,
        html_url=None,
        avatar_url=f"https://secure.gravatar.com/avatar/{1:032x}?d=identicon",
    )


DELETE = object()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"login": DELETE}, "missing 'login'"),
        ({"id": DELETE}, "missing 'id'"),
        ({"avatar_url": None}, "missing 'avatar_url'"),
        ({"id": "1000"}, "'id' is a string, expected an integer"),
        ({"id": True}, "'id' is a boolean, expected an integer"),
        ({"login": 7}, "'login' is a number, expected a string"),
        ({"html_url": ["x"]}, "'html_url' is an array, expected a string"),
        ({"node_id": {}}, "'node_id' is an object, expected a string"),
    ],
)
def test_github_member_errors_name_the_field(change: dict[str, Any], reason: str) -> None:
    entry = {**github_member("octocat", 1000), **change}
    entry = {key: value for key, value in entry.items() if value is not DELETE}
    with pytest.raises(ValueError) as caught:
        parse_member(entry)
    assert str(caught.value) == reason


async def test_github_missing_field_is_a_parse_error_naming_field_and_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    member = github_member("no-login", 5)
    del member["login"]
    page = members_page(LAST, [github_member_2012("defunkt", 2), member])

    with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.github"):
        items, _, problems = split(await collect(GithubSpider().scrape(page)))

    assert [m.login for m in items] == ["defunkt"] and items[0].html_url is None
    [problem] = problems
    assert problem == ParseError(url=LAST, reason="member 1: missing 'login'")
    [record] = caplog.records
    assert LAST in record.getMessage() and "'login'" in record.getMessage()


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


NOW = 1_700_000_000.0
PAST = 1_699_999_400.0  # ten minutes earlier: a server whose clock is behind ours


def rated(*headers: tuple[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers}


@pytest.mark.parametrize(
    ("status", "headers", "message", "attempt", "expected"),
    [
        # primary limit: remaining 0 and a reset, waited exactly (never doubled)
        (403, rated(*github_headers(remaining=0, reset=int(NOW) + 120)), None, 0, 121.0),
        (429, rated(*github_headers(remaining=0, reset=int(NOW) + 120)), None, 0, 121.0),
        (403, rated(*github_headers(remaining=0, reset=int(NOW) + 120)), None, 3, 121.0),
        # ... measured on the answer's Date, not on our clock
        (
            403,
            rated(*github_headers(remaining=0, reset=int(PAST) + 120, sent=PAST)),
            GITHUB_RATE_LIMITED["message"],
            0,
            121.0,
        ),
        (
            403,
            {**rated(*github_headers(remaining=0, reset=int(PAST) + 120)), "date": "garbage"},
            None,
            0,
            pytest.approx(1.0),  # an unreadable Date: our clock, by which the reset is past
        ),
        # remaining 0 without a reset: a minute, then doubling
        (403, rated(*github_headers(remaining=0, reset=None)), None, 0, 60.0),
        (403, rated(*github_headers(remaining=0, reset=None)), None, 1, 120.0),
        (403, rated(*github_headers(remaining=0, reset=None)), None, 3, 480.0),
        # secondary limit: quota left, no Retry-After, its message
        (403, rated(*github_headers()), GITHUB_SECONDARY_LIMITED["message"], 0, 60.0),
        (403, rated(*github_headers()), GITHUB_SECONDARY_LIMITED["message"], 2, 240.0),
        (403, rated(*github_headers()), GITHUB_ABUSE_LIMITED["message"], 0, 60.0),
        (403, {}, GITHUB_RATE_LIMITED["message"], 0, 60.0),
        (429, rated(*github_headers()), None, 0, 60.0),
        (429, {}, None, 1, 120.0),
        # Retry-After: as given (at least a second), doubled when the limit persists
        (429, {"retry-after": "30"}, None, 0, 30.0),
        (429, {"retry-after": "30"}, None, 1, 60.0),
        (403, {"retry-after": "30"}, GITHUB_SECONDARY_LIMITED["message"], 0, 30.0),
        (429, {"retry-after": "0"}, None, 0, 1.0),
        (429, {"retry-after": "0"}, None, 2, 4.0),
        (
            403,
            rated(("retry-after", "5"), *github_headers(remaining=0, reset=int(NOW) + 999)),
            None,
            0,
            5.0,
        ),
        (429, {"retry-after": "Tue, 14 Nov 2023 22:14:20 GMT"}, None, 0, 60.0),  # NOW + 1 min
        # a 2xx that spent the window pauses the host until the reset
        (200, rated(*github_headers(remaining=0, reset=int(NOW) + 10)), None, 0, 11.0),
        (200, rated(*github_headers(remaining=0, reset=int(NOW) - 50)), None, 0, 1.0),
        (200, rated(*github_headers(remaining=0, reset=None)), None, 0, 60.0),
        # not rate limited
        (200, rated(*github_headers(remaining=5)), None, 0, None),
        (403, rated(*github_headers()), GITHUB_NOT_ACCESSIBLE["message"], 0, None),
        (403, rated(*github_headers()), GITHUB_ADMIN_ONLY["message"], 0, None),
        (403, {}, None, 0, None),
        (404, rated(*github_headers(remaining=0, reset=int(NOW) + 10)), "Not Found", 0, None),
        (503, {"retry-after": "5"}, None, 0, None),
    ],
)
def test_github_rate_limit_delay(
    status: int,
    headers: Mapping[str, str],
    message: str | None,
    attempt: int,
    expected: float | None,
) -> None:
    delay = rate_limit_delay(status, headers, message, attempt=attempt, now=NOW)
    assert delay == (pytest.approx(expected) if expected is not None else None)


def test_github_date_without_a_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # a naive datetime would be read in this zone
    time.tzset()
    try:
        date = email.utils.formatdate(PAST)  # "... -0000": no zone, UTC by RFC 5322
        assert date.endswith("-0000")
        headers = {**rated(*github_headers(remaining=0, reset=int(PAST) + 120)), "date": date}
        assert rate_limit_delay(403, headers, None, attempt=0, now=NOW) == 121.0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_github_rate_limit_delay_reads_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: NOW)  # the clock the spider reads
    spider = GithubSpider()

    def answer(body: Any, *headers: tuple[str, str], status: int = 403) -> Any:
        return members_page(LAST, body, *headers, status=status)

    secondary = answer(GITHUB_SECONDARY_LIMITED, *github_headers())
    assert spider.rate_limit_delay(secondary) == 60.0
    forbidden = answer(GITHUB_NOT_ACCESSIBLE, *github_headers())
    assert spider.rate_limit_delay(forbidden) is None
    garbage = make_page(LAST, b"<html>rate limit</html>", status=403)
    assert spider.rate_limit_delay(garbage) is None  # a message only counts in GitHub's JSON
    deep = make_page(LAST, b"[" * 50_000, status=403, content_type=JSON)
    assert spider.rate_limit_delay(deep) is None
    primary = answer(GITHUB_RATE_LIMITED, *github_headers(remaining=0, reset=int(NOW) + 30))
    assert spider.rate_limit_delay(primary) == 31.0


def test_github_rate_limit_delay_doubles_with_the_requests_count() -> None:
    spider = GithubSpider()
    for count, expected in ((0, 60.0), (1, 120.0), (4, 960.0)):
        request = Request(url=LAST, rate_limited=count)
        page = members_page(LAST, GITHUB_SECONDARY_LIMITED, *github_headers(), status=403)
        page.request = request
        assert spider.rate_limit_delay(page) == expected


async def test_github_failed_page_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    failure = Failure(
        request=Request(url=NEXT), kind=FailureKind.HTTP_STATUS, message="HTTP 403", status=403
    )
    with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.github"):
        assert await collect(GithubSpider().failed(failure)) == []
    [record] = caplog.records
    assert NEXT in record.getMessage() and "HTTP 403" in record.getMessage()


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        (NEXT, "http://127.0.0.1:8123", NEXT.replace(API, "http://127.0.0.1:8123")),
        (
            NEXT,
            "http://127.0.0.1:8123/rec/github",
            NEXT.replace(API, "http://127.0.0.1:8123/rec/github"),
        ),
        (
            "https://API.github.com:443/organizations/9/members?page=2#x",
            "https://ghe.example/api/v3",
            "https://ghe.example/api/v3/organizations/9/members?page=2",
        ),
        (NEXT, API, NEXT),
        # not the public API's origin: unchanged (GitHub Enterprise writes its own URLs)
        (
            "https://ghe.example/api/v3/organizations/9/members?page=2",
            API,
            "https://ghe.example/api/v3/organizations/9/members?page=2",
        ),
        (
            "http://api.github.com/organizations/9/members",
            "http://127.0.0.1:1",
            "http://api.github.com/organizations/9/members",
        ),
        ("https://api.github.com:8443/x", "http://127.0.0.1:1", "https://api.github.com:8443/x"),
        ("https://api.github.com:99999/x", "http://127.0.0.1:1", "https://api.github.com:99999/x"),
    ],
)
def test_map_api_url(url: str, base: str, expected: str) -> None:
    assert map_api_url(url, base) == expected


async def test_github_next_link_on_the_api_origin_moves_to_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_example")
    base = "http://127.0.0.1:8123/recording"
    spider = GithubSpider(base_url=base, org="google")
    page = members_page(
        f"{base}/orgs/google/public_members?per_page=100", [], github_link_header(next=NEXT)
    )

    [following] = await collect(spider.scrape(page))

    assert following.url == f"{base}/organizations/1342004/public_members?per_page=100&page=2"
    assert following.headers["Authorization"] == "Bearer ghp_example"


def test_github_spider_settings() -> None:
    assert GithubSpider.accept == "json"
    assert GithubSpider.custom_settings["obey_robots"] is False
    assert GithubSpider.custom_settings["per_host_concurrency"] == 1
    # a primary window lasts an hour: the engine's cap must not cut the wait for its reset short
    assert GithubSpider.custom_settings["max_retry_after"] >= 3600


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


async def test_e2e_github_base_url_follows_the_apis_absolute_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GitHub's Link URLs name api.github.com: with base_url they are read from base_url (a
    recording under a path prefix here), with the token, and 2012-era members still count."""
    open_crawler = engine()
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_loopback")
    broken = github_member("broken", 9)
    del broken["login"]
    site = Site(
        {
            "/recording/orgs/python/public_members": served(
                github_json(github_members(3)),
                github_link_header(next=NEXT, last=LAST),
                *github_headers(),
            ),
            "/recording/organizations/1342004/public_members": served(
                github_json([github_member_2012("mojombo", 1), broken]), *github_headers()
            ),
        }
    )
    with trio.fail_after(20):
        async with open_site_server(site) as server:
            base = server.url("/recording")
            spider = GithubSpider(base_url=base, org="python")
            async with open_crawler(spider, loopback_settings(server)) as crawler:
                found = [item async for item in crawler.items()]
            stats = crawler.statistics()

    members, _, problems = split(found)
    assert sorted(m.login for m in members) == ["mojombo", "user-0", "user-1", "user-2"]
    page_two = f"{base}/organizations/1342004/public_members?per_page=100&page=2"
    assert problems == [ParseError(url=page_two, reason="member 1: missing 'login'")]
    assert stats.pages_ok == 2 and stats.failures == {}
    assert all(r.header("authorization") == "Bearer ghp_loopback" for r in server.requests)


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


# ---------------------------------------------------------------- github's rate limits, on
# Trio's autojump clock over an in-memory transport (real engine, virtual minutes, no sockets)

#: One API answer: (status, headers, body), chosen from the try's number and the virtual time.
Answer = tuple[int, list[tuple[str, str]], Any]


class VirtualApi:
    """api.github.com behind an ``httpx.MockTransport``: page 1 of python's members links to
    page 2, whose answers come from ``second(n, now)`` (``n`` counts its tries from 0)."""

    def __init__(self, second: Callable[[int, float], Answer]) -> None:
        self.second = second
        self.hits: list[tuple[float, str]] = []
        self.transport = httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        now = trio.current_time()
        self.hits.append((now, request.url.path))
        answer: Answer
        if request.url.path == "/orgs/python/public_members":
            answer = (200, [github_link_header(next=NEXT), *github_headers()], github_members(3))
        else:
            tries = sum(1 for _, path in self.hits if path == request.url.path) - 1
            answer = self.second(tries, now)
        status, headers, body = answer
        return httpx.Response(
            status, headers=[("content-type", JSON), *headers], content=github_json(body)
        )

    def times(self, path: str) -> list[float]:
        return [when for when, hit in self.hits if hit == path]


PAGE_TWO = "/organizations/1342004/public_members"
LATE = github_members(2, first_id=2000, prefix="late")


async def crawl_virtual_api(api: VirtualApi, **settings: Any) -> tuple[list[Any], Any]:
    with trio.fail_after(10_000):
        spider = GithubSpider(org="python")
        async with trio_crawler.open_crawler(
            spider, Settings(**settings), transport=api.transport
        ) as crawler:
            found = [item async for item in crawler.items()]
    return found, crawler.statistics()


@pytest.mark.parametrize(
    "limited",
    [
        # a secondary limit: quota left, no Retry-After; only the message says it
        (403, [*github_headers(remaining=4321), github_date(NOW)], GITHUB_SECONDARY_LIMITED),
        # the primary limit, but no reset to wait for
        (403, github_headers(remaining=0, reset=None), GITHUB_RATE_LIMITED),
        (429, [], {"message": "Too Many Requests"}),
    ],
    ids=["secondary", "no-reset", "bare-429"],
)
async def test_virtual_github_rate_limit_without_a_time_waits_a_minute_and_loses_nothing(
    autojump_clock: trio.testing.MockClock, limited: Answer
) -> None:
    def second(tries: int, now: float) -> Answer:
        return limited if tries == 0 else (200, github_headers(), LATE)

    api = VirtualApi(second)
    found, stats = await crawl_virtual_api(api)

    assert sorted(m.login for m in found) == ["late-0", "late-1", "user-0", "user-1", "user-2"]
    limited_at, again = api.times(PAGE_TWO)
    assert again - limited_at >= 60.0
    assert stats.failures == {}


async def test_virtual_github_primary_limit_waits_for_the_reset_and_asks_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Half an hour to the reset: one wait of half an hour, not a try every max_retry_after."""
    window: dict[str, float] = {}

    def second(tries: int, now: float) -> Answer:
        window.setdefault("ends", now + 1800)
        if now < window["ends"]:
            sent = time.time()
            reset = int(sent + window["ends"] - now)
            headers = [*github_headers(remaining=0, reset=reset, limit=60), github_date(sent)]
            return 403, headers, GITHUB_RATE_LIMITED
        return 200, github_headers(), LATE

    api = VirtualApi(second)
    found, stats = await crawl_virtual_api(api)

    assert len(found) == 5 and stats.failures == {}
    limited, again = api.times(PAGE_TWO)
    assert again - limited >= 1800.0


async def test_virtual_github_ordinary_403_is_not_waited_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def second(tries: int, now: float) -> Answer:
        return 403, github_headers(), GITHUB_NOT_ACCESSIBLE

    api = VirtualApi(second)
    with caplog.at_level(logging.WARNING, logger="trio_crawler.spiders.github"):
        found, stats = await crawl_virtual_api(api)

    assert len(found) == 3
    assert len(api.times(PAGE_TWO)) == 1
    assert stats.failures == {"http_status": 1}
    [record] = [r for r in caplog.records if r.name == "trio_crawler.spiders.github"]
    assert f"{API}{PAGE_TWO}" in record.getMessage() and "HTTP 403" in record.getMessage()


async def test_virtual_github_persistent_secondary_limit_backs_off_then_fails_loudly(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def second(tries: int, now: float) -> Answer:
        return 403, github_headers(), GITHUB_SECONDARY_LIMITED

    api = VirtualApi(second)
    with caplog.at_level(logging.WARNING):
        found, stats = await crawl_virtual_api(api)

    assert len(found) == 3
    assert stats.failures == {"rate_limited": 1}
    times = api.times(PAGE_TWO)
    assert len(times) >= 3  # retried more than once, and not forever
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 60.0 * 2**n for n, gap in enumerate(gaps))
    assert any(r.levelno >= logging.WARNING and PAGE_TWO in r.getMessage() for r in caplog.records)


def test_spider_modules_are_importable_as_examples() -> None:
    for module in (cvedetails, github, quotes):
        assert module.__doc__ and module.logger.name == module.__name__
