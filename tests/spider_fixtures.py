"""Fixture pages in the structure of the real sites the built-in spiders crawl.

Builders return ``str``/``bytes`` bodies (and header tuples) usable both for a :class:`Page` built
directly (:func:`make_page`) and for a loopback :class:`~trio_crawler.testing.Response`.
The markup follows what public scrapers of each site rely on (see ``spiders/cvedetails.py``):
keep it in step with the real sites when they drift.
"""

from __future__ import annotations

import dataclasses
import email.utils
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from trio_crawler._spider import Headers, Page, Request

HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"


def make_page(
    url: str,
    body: str | bytes,
    *,
    status: int = 200,
    content_type: str = HTML,
    headers: Iterable[tuple[str, str]] = (),
    meta: dict[str, Any] | None = None,
) -> Page:
    """A fetched :class:`Page` for ``url``, as the engine would hand it to ``scrape``."""
    raw = body.encode() if isinstance(body, str) else body
    return Page(
        request=Request(url=url, meta=meta or {}),
        url=url,
        status=status,
        headers=Headers([("content-type", content_type), *headers]),
        body=raw,
    )


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


# ---------------------------------------------------------------- cvedetails.com

CVEDETAILS_LIST = "/vulnerability-list/vulnerabilities.html"

_CVEDETAILS_NAV = (
    "<nav class='navbar'><a href='/'>CVEdetails.com</a>"
    "<a href='/vendor/list.php'>Vendors</a><a href='/product-search.php'>Products</a>"
    "<a href='/cve/CVE-2014-0160/'>Heartbleed</a></nav>"
)


@dataclasses.dataclass(frozen=True)
class CveRow:
    """What one CVE shows on a list page, in either layout."""

    cve_id: str
    summary: str = "A vulnerability allows remote attackers to do bad things."
    score: str = "7.5"
    published: str = "2024-04-12 08:15:06"
    updated: str = "2024-04-19 16:21:23"
    cwe: str | None = None  # "79": shown (old table; current blocks when present)
    cwe_href: str | None = None
    vuln_type: str = "Exec Code"
    impact: tuple[str, ...] = ("Remote", "Low", "Not required", "Partial", "Partial", "Partial")


def cve_block(row: CveRow) -> str:
    """One CVE block of the current layout (``data-tsvfield="cveinfo"``)."""
    cwe = ""
    if row.cwe:
        href = row.cwe_href or f"/cwe-details/{row.cwe}/"
        cwe = (
            f"<div>CWE: <a href='{href}' title='CWE-{row.cwe} - CWE definition'>{row.cwe}</a></div>"
        )
    return f"""
<div data-tsvfield="cveinfo" class="border-top py-3 px-2 hover-bg-light">
  <div class="row">
    <div class="col-md-9">
      <h3 class="fs-5 fw-bold mb-1" data-tsvfield="cveId">
        <a href="/cve/{row.cve_id}/" title="{row.cve_id} security vulnerability details">
          {row.cve_id}</a>
      </h3>
      <div class="cvesummarylong py-0" data-tsvfield="summary">
        {html.escape(row.summary)}
      </div>
      <div class="mt-2 ssc-text-secondary">Source: <a href="/vulnerability-list/assigner-1/">
        MITRE</a></div>
      {cwe}
    </div>
    <div class="col-md-3">
      <div class="row mb-1">
        <div class="col-5 text-nowrap ssc-text-secondary">Max CVSS</div>
        <div class="col-7" data-tsvfield="maxCvssBaseScore">
          <div class="cvssbox score_7" title="CVSS score">{row.score}</div>
        </div>
      </div>
      <div class="row mb-1">
        <div class="col-5 ssc-text-secondary">EPSS Score</div>
        <div class="col-7" data-tsvfield="epssScore"><span>0.05%</span></div>
      </div>
      <div class="row mb-1">
        <div class="col-5 ssc-text-secondary">Published</div>
        <div class="col-7" data-tsvfield="publishDate">{row.published}</div>
      </div>
      <div class="row mb-1">
        <div class="col-5 ssc-text-secondary">Updated</div>
        <div class="col-7" data-tsvfield="updateDate">{row.updated}</div>
      </div>
    </div>
  </div>
</div>"""


def broken_cve_block() -> str:
    """A block of the current layout whose heading lost its CVE id (a layout drift)."""
    return """
<div data-tsvfield="cveinfo" class="border-top py-3 px-2 hover-bg-light">
  <div class="row"><div class="col-md-9">
    <h3 data-tsvfield="cveId"><a href="/vulnerability-list/">(pending)</a></h3>
    <div class="cvesummarylong py-0" data-tsvfield="summary">Reserved entry.</div>
  </div></div>
</div>"""


def cvedetails_pager(page_hrefs: Sequence[str], current: int) -> str:
    """The pager under the results: numbered links, the current page bold, a next arrow."""
    parts = []
    for number, href in enumerate(page_hrefs, 1):
        if number == current:
            parts.append(f"<b>{number}</b>")
        else:
            parts.append(f"<a href='{href}' title='Go to page {number}'>{number}</a>")
    if current < len(page_hrefs):
        parts.append(
            f"<a class='nextpage' href='{page_hrefs[current]}' title='Next page'>&raquo;</a>"
        )
    return f"<div id='pagingb' class='paging'>{' '.join(parts)}</div>"


def cvedetails_page_href(number: int) -> str:
    return f"{CVEDETAILS_LIST}?page={number}&order=1"


def cvedetails_list_page(
    blocks: Iterable[str], *, page_hrefs: Sequence[str] = (), current: int = 1
) -> str:
    """A list page of the current layout: header links, ``#searchresults``, then the pager."""
    body = (
        f"{_CVEDETAILS_NAV}<div id='contentdiv'><h1>Security Vulnerabilities</h1>"
        f"<div id='searchresults'>{''.join(blocks)}</div>"
        f"{cvedetails_pager(page_hrefs, current) if page_hrefs else ''}</div>"
    )
    return _document("Security Vulnerabilities - CVEdetails.com", body)


def old_table_row(row: CveRow, number: int = 1) -> str:
    """One ``tr.srrowns`` of the pre-redesign table and its summary row."""
    cwe = ""
    if row.cwe:
        href = row.cwe_href or f"//www.cvedetails.com/cwe-details/{row.cwe}/cwe.html"
        cwe = f"<a href='{href}' title='CWE-{row.cwe} - CWE definition'>{row.cwe}</a>"
    impact = "".join(f"<td>{value}</td>" for value in row.impact)
    return f"""
<tr class="srrowns">
  <td class="num">{number}</td>
  <td nowrap><a href="/cve/{row.cve_id}/" title="{row.cve_id} security vulnerability details">
    {row.cve_id}</a></td>
  <td>{cwe}</td>
  <td class="num"></td>
  <td>{row.vuln_type}</td>
  <td>{row.published.split()[0]}</td>
  <td>{row.updated.split()[0]}</td>
  <td><div class="cvssbox" style="background-color:#ff8000">{row.score}</div></td>
  <td>None</td>
  {impact}
</tr>
<tr><td class="cvesummarylong" colspan="20">{html.escape(row.summary)}</td></tr>"""


def old_table_page(rows: Iterable[str], *, page_hrefs: Sequence[str] = (), current: int = 1) -> str:
    """A list page of the old layout (``#vulnslisttable``), pager in ``#pagingb``."""
    header = "".join(
        f"<th>{h}</th>"
        for h in (
            "#",
            "CVE ID",
            "CWE ID",
            "# of Exploits",
            "Vulnerability Type(s)",
            "Publish Date",
            "Update Date",
            "Score",
            "Gained Access Level",
            "Access",
            "Complexity",
            "Authentication",
            "Conf.",
            "Integ.",
            "Avail.",
        )
    )
    body = (
        f"{_CVEDETAILS_NAV}<table class='searchresults sortable' id='vulnslisttable'>"
        f"<tr>{header}</tr>{''.join(rows)}</table>"
        f"{cvedetails_pager(page_hrefs, current) if page_hrefs else ''}"
    )
    return _document("Vulnerability list", body)


def cvedetails_detail_page(
    cve_id: str,
    *,
    summary: str = "Out-of-bounds write in the parser.",
    published: str = "2023-02-03 06:15:10",
    updated: str = "2023-03-02 16:15:14",
    score: str = "7.5",
    cwe: str | None = "787",
    categories: Sequence[str] = ("Overflow", "Memory Corruption"),
) -> str:
    """A CVE's own page: summary, dates, categories, the CVSS table (v3.1 then v2), CWE list."""
    cats = "".join(f"<span class='ssc-vuln-cat'>{c}</span>" for c in categories)
    cwe_list = ""
    if cwe:
        cwe_list = f"""
<h2 id="cvedH2CWEs">CWE ids for {cve_id}</h2>
<ul class="list-group border-0 rounded-0"><li class="list-group-item border-0 border-top">
  <div><a href="/cwe-details/{cwe}/Out-of-bounds-Write.html" title="CWE-{cwe} - CWE definition">
    CWE-{cwe} Out-of-bounds Write</a></div>
  <div class="ssc-text-secondary ms-1">Assigned by: nvd@nist.gov (Primary)</div>
</li></ul>"""
    body = f"""
{_CVEDETAILS_NAV}
<div id="contentdiv"><div class="p-0 pe-2"><div class="p-0 m-0">
<h1>Vulnerability Details : {cve_id}</h1>
<div id="cvedetailssummary" class="cvedetailssummary-text">{html.escape(summary)}</div>
<div class="row"><div class="col-auto flex-fill">
  <div class="d-inline-block py-1"><span class="ssc-text-secondary p-1">Published</span>
    {published}</div>
  <div class="d-inline-block py-1"><span class="ssc-text-secondary p-1">Updated</span>
    {updated}</div>
  <div class="d-inline-block py-1"><span class="ssc-text-secondary p-1">Source</span>
    <a href="/vulnerability-list/assigner-1/cve-mitre.org.html">MITRE</a></div>
</div></div>
<div id="cve_catslabelsnotes_div"><div class="col-auto flex-fill pt-2">
  Vulnerability category: {cats}</div></div>
</div></div>
<h2 id="cvedH2CVSS">CVSS scores for {cve_id}</h2>
<div class="bg-white ps-2 border-top table-responsive"><table class="table table-borderless">
<thead><tr class="align-top"><th class="fw-medium">Base Score</th>
  <th class="fw-medium">Base Severity</th><th class="fw-medium">CVSS Vector</th>
  <th class="fw-medium">Exploitability Score</th><th class="fw-medium">Impact Score</th>
  <th class="fw-medium">Score Source</th></tr></thead>
<tbody>
<tr><td class="ps-2"><div class="cvssbox score_7">{score}</div></td><td class="ps-2">HIGH</td>
  <td class="ps-2"><a href="javascript:showhide('cvss_details_row_1')">
    CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H</a></td>
  <td class="ps-2"><div class="cvssbox score_3">3.9</div></td>
  <td class="ps-2"><div class="cvssbox score_3">3.6</div></td><td>NIST</td></tr>
<tr id="cvss_details_row_1" style="display:none"><td colspan="6">
  <div class="d-flex flex-row justify-content-evenly text-secondary d-grid gap-3">
    <div>Attack Vector: Network</div><div>Attack Complexity: Low</div>
    <div>Privileges Required: None</div><div>User Interaction: None</div>
    <div>Scope: Unchanged</div><div>Confidentiality: None</div><div>Integrity: None</div>
    <div>Availability: High</div>
  </div></td></tr>
<tr><td class="ps-2"><div class="cvssbox score_5">5.0</div></td><td class="ps-2">MEDIUM</td>
  <td class="ps-2"><a href="javascript:showhide('cvss_details_row_2')">
    AV:N/AC:L/Au:N/C:N/I:N/A:P</a></td><td class="ps-2"><div class="cvssbox">10.0</div></td>
  <td class="ps-2"><div class="cvssbox">2.9</div></td><td>NIST</td></tr>
<tr id="cvss_details_row_2" style="display:none"><td colspan="6">
  <div class="d-flex flex-row justify-content-evenly text-secondary d-grid gap-3">
    <div>Access Vector: Network</div><div>Access Complexity: Low</div>
    <div>Authentication: None</div><div>Confidentiality Impact: None</div>
    <div>Integrity Impact: None</div><div>Availability Impact: Partial</div>
  </div></td></tr>
</tbody></table></div>
{cwe_list}
</div>"""
    return _document(f"{cve_id} : Out-of-bounds write", body)


#: The rows of the old layout's CVSS table after the score: label, value, the site's explanation.
OLD_CVSS_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Confidentiality Impact", "Partial", "(There is considerable informational disclosure.)"),
    ("Integrity Impact", "None", "(There is no impact to the integrity of the system)"),
    ("Availability Impact", "None", "(There is no impact to the availability of the system.)"),
    (
        "Access Complexity",
        "Low",
        "(Specialized access conditions or extenuating circumstances do not exist. Very little "
        "knowledge or skill is required to exploit. )",
    ),
    (
        "Authentication",
        "Not required",
        "(Authentication is not required to exploit the vulnerability.)",
    ),
    ("Gained Access", "None", ""),
)


def cvedetails_old_detail_page(
    cve_id: str,
    *,
    summary: str = "Buffer over-read in the heartbeat extension discloses process memory.",
    published: str = "2014-04-07",
    updated: str = "2020-10-15",
    score: str = "5.0",
    rows: Sequence[tuple[str, str, str]] = OLD_CVSS_ROWS,
    types: Sequence[str] = ("Overflow", "+Info"),
    cwe: str | None = "119",
) -> str:
    """A CVE's own page before the redesign: the summary box ending in the dates' ``datenote``,
    then the "CVSS Scores & Vulnerability Types" table (``#cvssscorestable``: one ``th`` label
    per row, the value in the cell's first span and an explanation in ``.cvssdesc``), then the
    products and references tables. ``rows=()`` and ``score=""`` drop those rows."""
    table_rows = []
    if score:
        table_rows.append(
            '<tr><th>CVSS Score</th><td><div class="cvssbox" '
            f'style="background-color:#fff200">{score}</div></td></tr>'
        )
    for label, value, explanation in rows:
        note = f'\n\t\t<span class="cvssdesc">{explanation}</span>' if explanation else ""
        table_rows.append(
            f'<tr>\n\t<th>{label}</th>\n\t<td><span style="color:orange">{value}</span>{note}'
            "</td>\n</tr>"
        )
    if rows or score:
        spans = "".join(
            f'<span class="vt_{t.strip("+").lower()}">{html.escape(t)}</span>' for t in types
        )
        table_rows.append(f"<tr><th>Vulnerability Type(s)</th><td>{spans}</td></tr>")
        link = (
            f'<a href="//www.cvedetails.com/cwe-details/{cwe}/cwe.html" '
            f'title="CWE-{cwe} - CWE definition">{cwe}</a>'
            if cwe
            else "CWE id is not defined for this vulnerability"
        )
        table_rows.append(f"<tr><th>CWE ID</th><td>{link}</td></tr>")
    body = f"""
<div id="topmenu"><a href="/">CVEdetails.com</a> | <a href="/vendor/list.php">Vendors</a>
  | <a href="/product-search.php">Products</a></div>
<table width="100%"><tr><td id="leftcolumn"><a href="/browse-by-date.php">Browse by date</a>
</td><td id="contentdiv">
<h1>Vulnerability Details : <a href="/cve/{cve_id}/"
  title="{cve_id} security vulnerability details" style="text-decoration:none">{cve_id}</a>
  <span class="datenote">(1 public exploit)</span></h1>
<div class="cvedetailssummary">
\t{html.escape(summary)}\t<br>
\t<span class="datenote">Publish Date : {published}\tLast Update Date : {updated}</span>
</div>
<div class="cvssscorestable-title"><h1 class="stats">CVSS Scores &amp; Vulnerability Types</h1>
</div>
<table class="details" id="cvssscorestable">
<tbody>
{chr(10).join(table_rows)}
</tbody>
</table>
<h1 class="stats">Products Affected By {cve_id}</h1>
<table class="listtable" id="vulnprodstable"><tbody>
<tr><th class="num">#</th><th>Product Type</th><th>Vendor</th><th>Product</th><th>Version</th>
  <th>Update</th><th>Edition</th><th>Language</th><th></th></tr>
<tr><td class="num">1</td><td>Application</td>
  <td><a href="//www.cvedetails.com/vendor/217/Openssl.html">Openssl</a></td>
  <td><a href="//www.cvedetails.com/product/383/Openssl-Openssl.html?vendor_id=217">Openssl</a>
  </td><td>1.0.1</td><td></td><td></td><td></td>
  <td><a href="/version/150042/Openssl-Openssl-1.0.1.html">Version Details</a></td></tr>
</tbody></table>
<h1 class="stats">References For {cve_id}</h1>
<table class="listtable" id="vulnrefstable"><tbody>
<tr><td class="r_average"><a href="https://www.openssl.org/news/secadv/20140407.txt"
  target="_blank" title="External url">https://www.openssl.org/news/secadv/20140407.txt</a>
  CONFIRM<br></td></tr>
</tbody></table>
</td></tr></table>"""
    return _document(f"{cve_id} : Vulnerability details", body)


# ---------------------------------------------------------------- GitHub REST API


def github_member(login: str, ident: int, *, node_id: bool = True) -> dict[str, Any]:
    """A member as ``GET /orgs/{org}/public_members`` returns it (a simple-user object)."""
    member: dict[str, Any] = {
        "login": login,
        "id": ident,
        "node_id": f"MDQ6VXNlcj{ident}=",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{ident}?v=4",
        "gravatar_id": "",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "followers_url": f"https://api.github.com/users/{login}/followers",
        "repos_url": f"https://api.github.com/users/{login}/repos",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }
    if not node_id:
        del member["node_id"]
    return member


def github_members(
    count: int, *, first_id: int = 1000, prefix: str = "user"
) -> list[dict[str, Any]]:
    return [github_member(f"{prefix}-{i}", first_id + i) for i in range(count)]


def github_link_header(**rels: str) -> tuple[str, str]:
    """A ``Link`` header as GitHub writes it: ``<url>; rel="next", <url>; rel="last"``."""
    return ("link", ", ".join(f'<{url}>; rel="{rel}"' for rel, url in rels.items()))


def github_rate_headers(remaining: int, reset: int, limit: int = 60) -> list[tuple[str, str]]:
    return [
        ("x-ratelimit-limit", str(limit)),
        ("x-ratelimit-remaining", str(remaining)),
        ("x-ratelimit-reset", str(reset)),
        ("x-ratelimit-used", str(limit - remaining)),
        ("x-ratelimit-resource", "core"),
    ]


def github_member_2012(login: str, ident: int) -> dict[str, Any]:
    """A member as the API answered in 2012: no ``html_url``, no ``node_id``, no ``type``."""
    return {
        "login": login,
        "id": ident,
        "avatar_url": f"https://secure.gravatar.com/avatar/{ident:032x}?d=identicon",
        "gravatar_id": f"{ident:032x}",
        "url": f"https://api.github.com/users/{login}",
    }


def github_date(epoch: float) -> tuple[str, str]:
    """The ``Date`` header of an answer sent at ``epoch`` (Unix seconds)."""
    return ("date", email.utils.formatdate(epoch, usegmt=True))


def github_headers(
    *,
    remaining: int = 4990,
    reset: int | None = 1_700_003_600,
    limit: int = 5000,
    sent: float | None = None,
    resource: str = "core",
) -> list[tuple[str, str]]:
    """The headers GitHub documents on every REST answer: the API version, the ``x-ratelimit-*``
    headers of the primary limit (``reset=None`` leaves the reset out) and, with ``sent``, the
    ``Date``."""
    headers = [
        ("x-github-api-version-selected", "2022-11-28"),
        ("x-github-media-type", "github.v3; format=json"),
        ("x-ratelimit-limit", str(limit)),
        ("x-ratelimit-remaining", str(remaining)),
    ]
    if reset is not None:
        headers.append(("x-ratelimit-reset", str(reset)))
    headers += [
        ("x-ratelimit-used", str(limit - remaining)),
        ("x-ratelimit-resource", resource),
        ("x-github-request-id", "C0DE:1D:2E3F4:5A6B7C:65538F00"),
    ]
    if sent is not None:
        headers.append(github_date(sent))
    return headers


def github_json(value: Any) -> bytes:
    return json.dumps(value, indent=2).encode()


# Bodies of 403/429 answers, as GitHub writes them.
GITHUB_RATE_LIMITED = {
    "message": "API rate limit exceeded for 192.0.2.1. (But here's the good news: "
    "Authenticated requests get a higher rate limit.)",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
    "status": "403",
}
GITHUB_SECONDARY_LIMITED = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
    "try again. If you reach out to GitHub Support for help, please include the request ID "
    "C0DE:1D:2E3F4:5A6B7C:65538F00.",
    "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits",
    "status": "403",
}
GITHUB_ABUSE_LIMITED = {  # the secondary limit's name until 2021
    "message": "You have triggered an abuse detection mechanism. Please wait a few minutes "
    "before you try again.",
    "documentation_url": "https://developer.github.com/v3/#abuse-rate-limits",
}
GITHUB_NOT_ACCESSIBLE = {
    "message": "Resource not accessible by personal access token",
    "documentation_url": "https://docs.github.com/rest/orgs/members#list-public-organization-members",
    "status": "403",
}
GITHUB_ADMIN_ONLY = {
    "message": "Must have admin rights to Repository.",
    "documentation_url": "https://docs.github.com/rest",
    "status": "403",
}


# ---------------------------------------------------------------- quotes.toscrape.com


@dataclasses.dataclass(frozen=True)
class QuoteData:
    text: str  # without the curly quotes: the builders add them, as the site shows them
    author: str
    tags: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        return f"\u201c{self.text}\u201d"


SAMPLE_QUOTES = (
    QuoteData(
        "The world as we have created it is a process of our thinking. It cannot be changed "
        "without changing our thinking.",
        "Albert Einstein",
        ("change", "deep-thoughts", "thinking", "world"),
    ),
    QuoteData(
        "It is our choices, Harry, that show what we truly are, far more than our abilities.",
        "J.K. Rowling",
        ("abilities", "choices"),
    ),
    # Brackets, a semicolon and quotes inside the strings: a naive `\[.*?\];` cut breaks here.
    QuoteData(
        'A day without sunshine is like, you know, "night"]; [sic] {really}.',
        "Steve Martin",
        ("humor", "obvious", "simile"),
    ),
    # An HTML entity in the data: the browser shows an apostrophe after document.write.
    QuoteData("Don&#39;t cry because it&#39;s over, smile because it happened.", "Dr. Seuss", ()),
)


def _js_record(quote: QuoteData) -> dict[str, Any]:
    slug = quote.author.replace(".", "-").replace(" ", "-")
    return {
        "tags": list(quote.tags),
        "author": {
            "name": quote.author,
            "goodreads_link": f"/author/show/{len(quote.author)}.{slug}",
            "slug": slug,
        },
        "text": quote.shown,
    }


def _quotes_pager(next_href: str | None) -> str:
    if next_href is None:
        return "<nav><ul class='pager'></ul></nav>"
    return (
        "<nav><ul class='pager'><li class='next'>"
        f"<a href='{next_href}'>Next <span aria-hidden='true'>&rarr;</span></a></li></ul></nav>"
    )


def _quotes_header() -> str:
    return (
        "<div class='container'><div class='row header-box'><div class='col-md-8'><h1>"
        "<a href='/' style='text-decoration: none'>Quotes to Scrape</a></h1></div>"
        "<div class='col-md-4'><p><a href='/login'>Login</a></p></div></div>"
    )


def quotes_js_page(quotes: Sequence[QuoteData], *, next_href: str | None = None) -> str:
    """A ``/js/`` page: the data in a multi-line ``var data = [...]`` with ``\\u`` escapes."""
    data = json.dumps([_js_record(q) for q in quotes], indent=4)  # ensure_ascii: \u201c
    script = f"""
    <script src="/static/jquery.js"></script>
    <script>
    var data = {data};
    for (var i in data) {{
        var d = data[i];
        var tags = $.map(d['tags'], function(t) {{
            return "<a class='tag'>" + t + "</a>";
        }}).join(" ");
        document.write("<div class='quote'><span class='text'>" + d['text'] + "</span><span>by "
            + "<small class='author'>" + d['author']['name'] + "</small></span>"
            + "<div class='tags'>Tags: " + tags + "</div></div>");
    }}
    </script>"""
    body = f"{_quotes_header()}{script}{_quotes_pager(next_href)}</div>"
    return _document("Quotes to Scrape", body)


def quotes_html_page(quotes: Sequence[QuoteData], *, next_href: str | None = None) -> str:
    """A plain page: ``.quote`` blocks with ``.text``, ``.author`` and ``.tags .tag``."""
    blocks = []
    for quote in quotes:
        tags = "".join(
            f"<a class='tag' href='/tag/{t}/page/1/'>{html.escape(t)}</a>\n" for t in quote.tags
        )
        # The site escapes apostrophes as &#39; in its HTML: the parser must decode them.
        text = html.escape(quote.shown.replace("&#39;", "'"), quote=False).replace("'", "&#39;")
        blocks.append(
            f"""
<div class="quote" itemscope itemtype="http://schema.org/CreativeWork">
  <span class="text" itemprop="text">{text}</span>
  <span>by <small class="author" itemprop="author">{html.escape(quote.author)}</small>
  <a href="/author/{quote.author.replace(" ", "-")}">(about)</a></span>
  <div class="tags">Tags:
    <meta class="keywords" itemprop="keywords" content="{",".join(quote.tags)}" />
    {tags}</div>
</div>"""
        )
    body = f"{_quotes_header()}<div class='col-md-8'>{''.join(blocks)}{_quotes_pager(next_href)}"
    return _document("Quotes to Scrape", body + "</div></div>")


def quote_as_shown(quote: QuoteData) -> str:
    """The quote's text as a browser displays it (entities decoded, curly quotes kept)."""
    return html.unescape(quote.shown)
