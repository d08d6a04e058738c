"""CVE list of cvedetails.com: one :class:`Cve` item per vulnerability.

The site was redesigned after the Black Hat Rust course. Both layouts are parsed:

* **current** (``#searchresults``): one block per CVE marked ``data-tsvfield="cveinfo"``; inside
  it ``data-tsvfield`` names the fields: ``cveId`` (the heading holding the ``/cve/CVE-.../``
  link), ``summary`` (``.cvesummarylong``), ``maxCvssBaseScore`` (holding a ``.cvssbox``),
  ``publishDate``, ``updateDate``. The page links under ``#pagingb`` lead to the next pages.
* **old** (``#vulnslisttable``): one ``tr.srrowns`` per CVE, fixed columns (CVE, CWE, type,
  dates, score, access and impact), the summary in the following ``td.cvesummarylong`` row.

``--arg details=1`` also follows each CVE's own page (``/cve/CVE-.../``) and completes the item
with what that page adds: CWE, vulnerability categories and the CVSS impact fields. A CVE page
is read in either layout: the current one (a CVSS table with a "Base Score" column and a details
row per CVSS version) or the old one (the "CVSS Scores & Vulnerability Types" table,
``#cvssscorestable``, one labelled row per field, and the dates in ``span.datenote``). The list
item travels in ``Request.meta``; if the detail page cannot be fetched, :meth:`failed` emits the
list item as it was, so nothing is lost.

A block that does not parse becomes a :class:`ParseError` item (and a warning naming the URL),
and so does a CVE page from which no CVSS field could be read (beside its item); the spider
never raises on bad markup. A page that cannot be fetched (the start page's 404, say) is logged
at WARNING with its URL and status by :meth:`failed`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .._spider import Failure, Page, Request, Spider, register
from ._shared import ParseError, checked_base_url, checked_flag, parse_error, warn_failed

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.cvedetails.com"
LIST_PATH = "/vulnerability-list/vulnerabilities.html"

_CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
_CWE_ID = re.compile(r"(\d+)")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DETAIL_PATH = re.compile(r"/cve/CVE-\d{4}-\d{4,}/?$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Cve:
    """One vulnerability. Fields the page does not show are None."""

    cve_id: str
    url: str
    summary: str | None = None
    published: str | None = None  # ISO date, YYYY-MM-DD
    updated: str | None = None
    cvss_score: float | None = None
    cwe_id: str | None = None  # "CWE-79"
    cwe_url: str | None = None
    vulnerability_type: str | None = None
    access: str | None = None  # access vector (v2) or attack vector (v3)
    complexity: str | None = None
    authentication: str | None = None
    confidentiality: str | None = None
    integrity: str | None = None
    availability: str | None = None


@register
class CveDetailsSpider(Spider):
    """The CVE list of cvedetails.com, page after page (see the module docstring)."""

    name = "cvedetails"
    description = "CVE list of cvedetails.com: id, summary, dates, CVSS score, CWE, impact"
    item_types = (Cve, ParseError)
    args = {
        "base_url": f"site to crawl (default {DEFAULT_BASE_URL})",
        "details": "1 to also fetch each CVE's page for CWE, categories and impact (default 0)",
    }

    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)
        self.base_url = checked_base_url(kwargs.get("base_url", DEFAULT_BASE_URL))
        self.details = checked_flag(kwargs.get("details", "0"), "details")

    @property
    def start_url(self) -> str:
        return self.base_url + LIST_PATH

    def start_requests(self) -> Iterable[Request | str]:
        return [self.start_url]

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        if _DETAIL_PATH.search(urlsplit(page.url).path) or "cve" in page.request.meta:
            for value in _parse_detail(page):
                yield value
            return
        blocks = page.css('[data-tsvfield="cveinfo"]')
        rows = page.css("tr.srrowns")
        if blocks:
            parsed = [_parse_block(page, i, block) for i, block in enumerate(blocks, 1)]
        elif rows:
            parsed = [_parse_row(page, i, row) for i, row in enumerate(rows, 1)]
        else:
            parsed = [_problem(page, "no CVE list (neither #searchresults nor the old table)")]
        for item in parsed:
            if isinstance(item, Cve) and self.details:
                yield page.follow(item.url, meta={"cve": dataclasses.asdict(item)})
            else:
                yield item
        for href in _paging_links(page):
            yield page.follow(href)

    async def failed(self, failure: Failure) -> AsyncIterator[Any]:
        """Say at WARNING which page could not be fetched (the engine logs an HTTP status at
        INFO); a CVE page that failed still yields what the list page said."""
        known = failure.request.meta.get("cve")
        if isinstance(known, Mapping):
            warn_failed(logger, failure, "CVE page (the list's item is kept)")
            yield Cve(**known)
            return
        start = failure.request.original_url == self.start_url
        warn_failed(logger, failure, "start page" if start else "list page")


# ---------------------------------------------------------------- list pages


def _parse_block(page: Page, index: int, block: Any) -> Cve | ParseError:
    """One ``data-tsvfield="cveinfo"`` block of the current layout."""
    heading = block.css_first('[data-tsvfield="cveId"]') or block.css_first("h3")
    link = block.css_first('[data-tsvfield="cveId"] a') or block.css_first('a[href*="/cve/"]')
    found = _CVE_ID.search(_text(link) or _text(heading) or "")
    if found is None:
        return _problem(page, f"CVE block {index} has no CVE id: {_snippet(block)!r}")
    cve_id = found.group(0).upper()
    href = (link.attributes.get("href") or "") if link is not None else ""
    url = page.follow(href if "/cve/" in href else f"/cve/{cve_id}/").url
    score_box = block.css_first('[data-tsvfield="maxCvssBaseScore"] .cvssbox') or block.css_first(
        '[data-tsvfield="maxCvssBaseScore"]'
    )
    summary = block.css_first('[data-tsvfield="summary"]') or block.css_first(".cvesummarylong")
    cwe_id, cwe_url = _cwe(page, block.css_first('a[href*="cwe-details"]'))
    return Cve(
        cve_id=cve_id,
        url=url,
        summary=_text(summary),
        published=_iso_date(_text(block.css_first('[data-tsvfield="publishDate"]'))),
        updated=_iso_date(_text(block.css_first('[data-tsvfield="updateDate"]'))),
        cvss_score=_score(_text(score_box)),
        cwe_id=cwe_id,
        cwe_url=cwe_url,
    )


# Columns of the old table: 0 row number, 1 CVE, 2 CWE, 3 exploits, 4 type, 5 published,
# 6 updated, 7 score, 8 gained access, 9 access, 10 complexity, 11 authentication,
# 12 confidentiality, 13 integrity, 14 availability.


def _parse_row(page: Page, index: int, row: Any) -> Cve | ParseError:
    """One ``tr.srrowns`` of the old ``#vulnslisttable``."""
    cells = row.css("td")
    if len(cells) < 8:
        return _problem(page, f"CVE row {index} has {len(cells)} columns, expected 15")
    link = cells[1].css_first("a")
    found = _CVE_ID.search(_text(cells[1]) or "")
    if link is None or found is None:
        return _problem(page, f"CVE row {index} has no CVE link: {_snippet(row)!r}")
    href = link.attributes.get("href") or f"/cve/{found.group(0)}/"
    cwe_id, cwe_url = _cwe(page, cells[2].css_first("a"))
    impact = [_text(cell) for cell in cells[9:15]] + [None] * 6
    return Cve(
        cve_id=found.group(0).upper(),
        url=page.follow(href).url,
        summary=_text(_summary_after(row)),
        published=_iso_date(_text(cells[5])),
        updated=_iso_date(_text(cells[6])),
        cvss_score=_score(_text(cells[7])),
        cwe_id=cwe_id,
        cwe_url=cwe_url,
        vulnerability_type=_text(cells[4]),
        access=impact[0],
        complexity=impact[1],
        authentication=impact[2],
        confidentiality=impact[3],
        integrity=impact[4],
        availability=impact[5],
    )


def _summary_after(row: Any) -> Any:
    """The ``td.cvesummarylong`` of the row following ``row`` (the old layout's summary)."""
    sibling = row.next
    while sibling is not None and sibling.tag != "tr":
        sibling = sibling.next
    return sibling.css_first("td.cvesummarylong") if sibling is not None else None


def _paging_links(page: Page) -> list[str]:
    """Hrefs of the pager (both layouts keep ``#pagingb``; a few variants as fallbacks).

    The link back to page 1 is left out: the crawl starts there under another URL (no
    ``?page=1``), and following it would scrape the first page twice.
    """
    hrefs: list[str] = []
    for anchor in page.css("#pagingb a[href], .paging a[href], a.nextpage[href], a[rel=next]"):
        href = (anchor.attributes.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:")) or href in hrefs:
            continue
        if parse_qs(urlsplit(href).query).get("page") == ["1"]:
            continue
        hrefs.append(href)
    return hrefs


# ---------------------------------------------------------------- detail pages

# Labels of the CVSS details row, v2 and v3 names, per Cve field (first match wins).
_IMPACT_LABELS = {
    "access": ("access vector", "attack vector"),
    "complexity": ("access complexity", "attack complexity"),
    "authentication": ("authentication",),
    "confidentiality": ("confidentiality impact", "confidentiality"),
    "integrity": ("integrity impact", "integrity"),
    "availability": ("availability impact", "availability"),
}


#: Fields the CVSS table gives; a detail page from which none of them is read says so.
_CVSS_FIELDS = ("cvss_score", *_IMPACT_LABELS)

# Row labels of the old layout's "CVSS Scores & Vulnerability Types" table (#cvssscorestable),
# per Cve field. Its "Gained Access" row has no field.
_OLD_ROWS = {
    "cvss score": "cvss_score",
    "access vector": "access",
    "access complexity": "complexity",
    "authentication": "authentication",
    "confidentiality impact": "confidentiality",
    "integrity impact": "integrity",
    "availability impact": "availability",
    "vulnerability type(s)": "vulnerability_type",
}
_OLD_PUBLISHED = re.compile(r"publish(?:ed)?\s+date\s*:\s*(\d{4}-\d{2}-\d{2})", re.IGNORECASE)
_OLD_UPDATED = re.compile(r"update\s+date\s*:\s*(\d{4}-\d{2}-\d{2})", re.IGNORECASE)


def _parse_detail(page: Page) -> list[Cve | ParseError]:
    """A CVE's own page, merged into the list item carried in ``meta`` (which wins).

    Both layouts: the current one (dates in ``.d-inline-block`` boxes, ``.ssc-vuln-cat``
    categories, a CVSS table with a "Base Score" column and a details row per version) and the
    old one (``.cvedetailssummary`` ending in a ``span.datenote`` with the dates, and the "CVSS
    Scores & Vulnerability Types" table ``#cvssscorestable``, one labelled row per field). A
    page from which no CVSS field could be read yields a :class:`ParseError` beside the item.
    """
    known = page.request.meta.get("cve")
    heading = _text(page.html.css_first("h1")) or ""
    found = _CVE_ID.search(heading) or _CVE_ID.search(urlsplit(page.url).path)
    if found is None and not isinstance(known, Mapping):
        return [_problem(page, "CVE page without a CVE id")]
    base = (
        Cve(**known)
        if isinstance(known, Mapping)
        else Cve(cve_id=found.group(0).upper() if found else "", url=page.url)
    )
    cwe_id, cwe_url = _cwe(page, page.html.css_first('a[href*="cwe-details"]'))
    old_table = page.html.css_first("table#cvssscorestable")
    layout = _old_detail(page, old_table) if old_table is not None else _current_detail(page)
    found_fields: dict[str, Any] = {"cwe_id": cwe_id, "cwe_url": cwe_url, **layout}
    gaps = {k: v for k, v in found_fields.items() if v is not None and getattr(base, k) is None}
    item = dataclasses.replace(base, **gaps)
    if any(found_fields.get(name) is not None for name in _CVSS_FIELDS):
        return [item]
    if old_table is not None:
        reason = "#cvssscorestable has no CVSS score nor impact row"
    elif "cvss_score" in layout:
        reason = "the CVSS scores table has no score nor impact fields"
    else:
        reason = "no CVSS table (neither a Base Score table nor #cvssscorestable)"
    return [item, _problem(page, f"{reason}: score, complexity and impacts not read")]


def _current_detail(page: Page) -> dict[str, Any]:
    """What a detail page of the current layout shows (``cvss_score`` is present, maybe None,
    when it has a CVSS scores table)."""
    dates: dict[str, str | None] = {}
    for box in page.css(".d-inline-block"):
        label = (_text(box.css_first(".ssc-text-secondary")) or "").lower()
        if label in ("published", "updated"):
            dates[label] = _iso_date(_text(box))
    categories = [_text(span) for span in page.css(".ssc-vuln-cat")]
    summary = page.html.css_first("#cvedetailssummary") or page.html.css_first(
        ".cvedetailssummary-text"
    )
    return {
        "summary": _text(summary),
        "published": dates.get("published"),
        "updated": dates.get("updated"),
        "vulnerability_type": ", ".join(c for c in categories if c) or None,
        **_cvss_table(page),
    }


def _old_detail(page: Page, table: Any) -> dict[str, Any]:
    """What a detail page of the old layout shows: the labelled rows of ``#cvssscorestable``
    (the value is a cell's first span, its ``.cvssdesc`` explanation left out), the summary and
    the dates of ``.cvedetailssummary``."""
    result: dict[str, Any] = {}
    for row in table.css("tr"):
        field = _OLD_ROWS.get((_text(row.css_first("th")) or "").lower())
        cell = row.css_first("td")
        if field is None or cell is None or field in result:
            continue
        spans = [span for span in cell.css("span") if "cvssdesc" not in _classes(span)]
        if field == "cvss_score":
            result[field] = _score(_text(cell))
        elif field == "vulnerability_type":
            shown = [text for text in map(_text, spans) if text]
            result[field] = ", ".join(shown) if shown else _text(cell)
        else:
            result[field] = _text(spans[0]) if spans else _text(cell)
    summary_box = page.html.css_first(".cvedetailssummary")
    datenote = summary_box.css_first(".datenote") if summary_box is not None else None
    note = _text(datenote) or ""
    summary = _text(summary_box) or ""
    if note and summary.endswith(note):
        summary = summary[: -len(note)].strip()
    published, updated = _OLD_PUBLISHED.search(note), _OLD_UPDATED.search(note)
    result["summary"] = summary or None
    result["published"] = published.group(1) if published else None
    result["updated"] = updated.group(1) if updated else None
    return result


def _cvss_table(page: Page) -> dict[str, Any]:
    """Base score and impact fields from the first row of the CVSS scores table that has them
    (empty when the page has no such table)."""
    for table in page.css("table"):
        headers = [(_text(th) or "").lower() for th in table.css("th")]
        if "base score" not in headers:
            continue
        result: dict[str, Any] = {"cvss_score": None}
        cells = table.css("tbody tr td") or table.css("tr td")
        if len(cells) > headers.index("base score"):
            result["cvss_score"] = _score(_text(cells[headers.index("base score")]))
        for row in table.css("tr"):
            pairs = {}
            for part in row.css("div"):
                # Skip containers, read their children (lexbor's css() also matches the node
                # itself, so look at the children directly).
                if any(child.tag == "div" for child in part.iter()):
                    continue
                key, sep, value = (_text(part) or "").partition(":")
                if sep and value.strip():
                    pairs[key.strip().lower()] = value.strip()
            impact = {
                field: next((pairs[label] for label in labels if label in pairs), None)
                for field, labels in _IMPACT_LABELS.items()
            }
            if any(impact.values()):
                result.update(impact)
                break
        return result
    return {}


# ---------------------------------------------------------------- helpers


def _text(node: Any) -> str | None:
    """The node's text with whitespace collapsed; None for a missing node or empty text."""
    if node is None:
        return None
    text = " ".join(node.text(separator=" ").split())
    return text or None


def _snippet(node: Any, limit: int = 80) -> str:
    text = _text(node) or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso_date(text: str | None) -> str | None:
    found = _DATE.search(text or "")
    return "-".join(found.groups()) if found else None


def _score(text: str | None) -> float | None:
    found = _NUMBER.search(text or "")
    if found is None:
        return None
    value = float(found.group(0))
    return value if 0.0 <= value <= 10.0 else None


def _cwe(page: Page, link: Any) -> tuple[str | None, str | None]:
    """CWE id (``CWE-79``) and absolute URL from a ``cwe-details`` link, if there is one."""
    if link is None:
        return None, None
    href = link.attributes.get("href")
    text = _text(link) or ""
    digits = _CWE_ID.search(text) or _CWE_ID.search(href or "")
    cwe_id = f"CWE-{digits.group(1)}" if digits else None
    return cwe_id, (page.follow(href).url if href else None)


def _classes(node: Any) -> list[str]:
    return (node.attributes.get("class") or "").split()


def _problem(page: Page, reason: str) -> ParseError:
    return parse_error(logger, page.url, reason)
