"""The report as one self-contained HTML file: inline CSS, inline SVG, a few lines of plain
JavaScript (table sorting and filtering; the page reads the same without it).

Nothing is fetched: no CDN, no font, no image. A Content-Security-Policy allows exactly the
inline style and script of this file, by hash, and nothing else (no network, no other
script), so even a string that escaped escaping could not run. Every value from the crawl goes
through :func:`~.markup.esc` (see ``markup.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .aggregate import PageRow, Report, Table, host_of
from .assets import CSP, SCRIPT, STYLE
from .charts import (
    depth_chart,
    fmt_bytes,
    fmt_seconds,
    hbar_chart,
    histogram_chart,
    timeline_chart,
)
from .markup import Markup, esc, href, join, shorten, tag, void
from .model import STATUS_CLASSES

#: Characters of a URL or title shown in a cell (links keep the whole URL).
URL_CHARS = 140
TITLE_CHARS = 120
#: Referrer links listed in the whole broken-link table; beyond it only counts (file size).
REFERRER_LINKS = 4000
#: Statistics shown only when the crawl rendered (zero in every crawl that did not).
_RENDER_FIGURES = frozenset(
    ("rendered", "rendered_cut", "subrequests", "subrequests_refused", "browser_crashes")
)

Cell = tuple[Markup | str, float | str | None]  # (content, sort value; None: sort by text)


# --------------------------------------------------------------------------- small parts
def _link(url: str, limit: int = URL_CHARS) -> Markup:
    target = href(url)
    text = shorten(url, limit)
    if target is None:
        return esc(text)
    return tag(
        "a",
        {"href": target, "rel": "noreferrer noopener", "title": url if text != url else None},
        text,
    )


def _status(status: int | None, kind: str | None = None) -> Markup:
    if status is not None:
        cls = f"{status // 100}xx" if 200 <= status < 600 else "other"
        return tag("span", {"class": f"status c-{cls}"}, str(status))
    name = (
        "not fetched" if kind in ("robots", "out_of_scope", "forbidden_address") else "no response"
    )
    return tag("span", {"class": f"status c-{name.replace(' ', '-')}"}, kind or "—")


def _more(shown: int, total: int, what: str) -> Markup:
    if total <= shown:
        return Markup("")
    return tag("span", {"class": "more"}, f"+{total - shown:,} more {what}")


def _card(value: str, label: str, bad: bool = False, text: bool = False) -> Markup:
    return tag(
        "div",
        {"class": "card bad" if bad else "card"},
        tag("div", {"class": "v text" if text else "v"}, value),
        tag("div", {"class": "k"}, label),
    )


def _facts(
    title: str, rows: Sequence[tuple[str, str]], numeric: bool = False, cls: str = ""
) -> Markup:
    if not rows:
        body = tag("p", {"class": "none"}, "none")
    else:
        body = tag(
            "table",
            None,
            join(
                tag(
                    "tr",
                    None,
                    tag("th", None, k),
                    tag("td", {"class": "num"} if numeric else None, v),
                )
                for k, v in rows
            ),
        )
    return tag("div", {"class": f"box {cls}".strip()}, tag("h3", None, title), body)


def _table(
    table_id: str,
    columns: Sequence[tuple[str, bool]],
    rows: Sequence[Sequence[Cell]],
    *,
    shown_of: tuple[int, int],
    empty: str,
) -> Markup:
    """A sortable, filterable table. ``columns``: (header, numeric). Each cell is (content,
    sort value); numeric columns right-aligned."""
    shown, total = shown_of
    count_id = f"{table_id}-count"
    tally = f"{total:,} in all" if shown >= total else f"the first {shown:,} of {total:,}"
    tools = tag(
        "div",
        {"class": "tools"},
        void(
            "input",
            {
                "type": "search",
                "class": "filter",
                "placeholder": "filter rows…",
                "aria-label": "filter the rows of this table",
                "data-table": table_id,
                "data-count": count_id,
                "hidden": True,
            },
        ),
        tag("span", None, tally),
        tag("span", {"id": count_id, "aria-live": "polite"}),
    )
    if not rows:
        return tag("div", {"class": "tablebox"}, tag("p", {"class": "none"}, empty))
    head = tag(
        "thead",
        None,
        tag(
            "tr",
            None,
            join(
                tag("th", {"class": "num" if num else None, "scope": "col"}, name)
                for name, num in columns
            ),
        ),
    )
    body_rows: list[Markup] = []
    for row in rows:
        cells = []
        for (content, sort), (_, num) in zip(row, columns, strict=True):
            attrs: dict[str, object] = {}
            if num:
                attrs["class"] = "num"
            elif isinstance(content, Markup) and content.startswith("<a"):
                attrs["class"] = "url"
            if sort is not None:
                attrs["data-v"] = sort
            cells.append(tag("td", attrs, content))
        body_rows.append(tag("tr", None, join(cells)))
    table = tag(
        "table",
        {"class": "data sortable", "id": table_id},
        head,
        tag("tbody", None, join(body_rows)),
    )
    return tag("div", {"class": "tablebox"}, tools, tag("div", {"class": "scroll"}, table))


def _section(section_id: str, title: str, lead: str | Markup, body: Markup) -> Markup:
    return tag(
        "section",
        {"id": section_id},
        tag("h2", None, title),
        tag("p", {"class": "lead"}, lead),
        body,
    )


def _urls(urls: Sequence[str], total: int, what: str = "pages") -> Markup:
    return join(
        [
            tag("ul", None, join(tag("li", None, _link(u, 110)) for u in urls)),
            _more(len(urls), total, what),
        ]
    )


# --------------------------------------------------------------------------- sections
def _summary(report: Report) -> Markup:
    s = report.summary
    info = report.info
    stats = info.stats
    cards = [
        _card(f"{s.records:,}", "pages tried"),
        _card(f"{s.ok:,}", "pages fetched"),
        _card(f"{s.failed:,}", "failed", bad=s.failed > 0),
        _card(f"{report.broken.total:,}", "broken links", bad=report.broken.total > 0),
        _card(f"{report.redirects.total:,}", "redirected"),
        _card(fmt_seconds(s.duration) if s.duration is not None else "unknown", "duration"),
        _card(f"{s.pages_per_second:,.1f}" if s.pages_per_second else "—", "pages/s"),
        _card(fmt_bytes(s.bytes), "bytes (decoded)"),
        _card(f"{s.hosts:,}", "hosts"),
        _card(
            info.stop_reason or "unknown",
            "stop reason",
            bad=info.stop_reason in ("error", "fail_fast"),
            text=True,
        ),
    ]
    classes = [
        (name, f"{s.status_classes[name]:,}") for name in STATUS_CLASSES if name in s.status_classes
    ]
    failures = [(kind, f"{n:,}") for kind, n in s.failures.items()]
    crawl_facts: list[tuple[str, str]] = []
    if info.seeds:
        crawl_facts.append(
            (
                "seeds",
                ", ".join(info.seeds[:5])
                + (f" (+{len(info.seeds) - 5})" if len(info.seeds) > 5 else ""),
            )
        )
    if s.first_at is not None:
        crawl_facts.append(("first page", _when(s.first_at)))
    if s.last_at is not None:
        crawl_facts.append(("last page", _when(s.last_at)))
    crawl_facts.extend(info.settings)
    figures: list[tuple[str, str]] = []
    for key, label in (
        ("requests", "requests"),
        ("retries", "retries"),
        ("redirects", "redirects followed"),
        ("robots_fetches", "robots.txt fetched"),
        ("links_found", "links found"),
        ("links_queued", "links queued"),
        ("items", "items"),
        ("queued", "left in the queue"),
        ("rendered", "pages rendered"),
        ("rendered_cut", "renders cut at the timeout"),
        ("subrequests", "requests of rendered pages"),
        ("subrequests_refused", "requests of rendered pages refused"),
        ("browser_crashes", "browser crashes"),
    ):
        value = stats.get(key)
        rendering = key in _RENDER_FIGURES
        if isinstance(value, int) and not isinstance(value, bool) and (value or not rendering):
            figures.append((label, f"{value:,}"))
    dropped = stats.get("dropped")
    if isinstance(dropped, dict):
        for reason, n in sorted(dropped.items(), key=lambda kv: -_num(kv[1])):
            figures.append((f"links dropped: {reason}", f"{_num(n):,}"))
    types = [(ctype, f"{n:,}") for ctype, n in s.content_types.items()]
    notes = list(info.notes)
    if s.skipped:
        notes.append(
            f"{s.skipped:,} records were not page records of the generic spider and were left out."
        )
    notes_html = (
        tag("ul", {"class": "notes"}, join(tag("li", None, n) for n in notes))
        if notes
        else Markup("")
    )
    return tag(
        "section",
        {"id": "summary"},
        tag("h2", None, "Summary"),
        tag("div", {"class": "cards"}, join(cards)),
        tag(
            "div",
            {"class": "facts"},
            _facts("The crawl", crawl_facts, cls="kv wide"),
            _facts("Pages by status class", classes, numeric=True),
            _facts("Failures by kind", failures, numeric=True),
            _facts("Content types (pages fetched)", types, numeric=True),
            _facts("Statistics", figures, numeric=True) if figures else Markup(""),
        ),
        notes_html,
    )


def _charts(report: Report) -> Markup:
    s = report.summary
    hosts = [
        (
            h.host,
            float(h.pages),
            f"{h.pages:,} pages" + (f", {h.failed:,} failed" if h.failed else ""),
        )
        for h in report.hosts_by_pages
    ]
    slow_hosts = [
        (h.host, h.mean_time or 0.0, f"{fmt_seconds(h.mean_time or 0.0)} ({h.pages:,} pages)")
        for h in report.hosts_by_time
    ]
    kinds = [(k, float(n), f"{n:,}") for k, n in list(s.failures.items())[:15]]
    figures = [
        timeline_chart(report.timeline),
        histogram_chart(
            report.response_times,
            chart_id="chart-response-times",
            title="Response times",
            x_title="response time, request to last byte (log scale)",
            fmt="seconds",
            empty="no timed responses",
        ),
        histogram_chart(
            report.sizes,
            chart_id="chart-sizes",
            title="Page sizes",
            x_title="page size, decoded bytes (log scale)",
            fmt="bytes",
            empty="no pages fetched",
        ),
        depth_chart(report.depths),
        hbar_chart(
            hosts,
            chart_id="chart-hosts-pages",
            title="Top hosts by pages",
            x_title="pages tried",
            empty="no hosts",
        ),
        hbar_chart(
            slow_hosts,
            chart_id="chart-hosts-time",
            title="Slowest hosts by mean response time",
            x_title="mean response time per host (hosts with 5 pages or more)",
            empty="no timed responses",
        ),
        hbar_chart(
            kinds,
            chart_id="chart-failures",
            title="Failures by kind",
            x_title="failed pages",
            empty="no failures",
            colours=["#e03131"] * len(kinds),
        ),
    ]
    captions = [
        "Pages and failures over time, by status class",
        "Response times (p50, p90, p99 marked)",
        "Page sizes (p50, p90, p99 marked)",
        "Pages by depth",
        "Top hosts by pages",
        "Slowest hosts (mean response time)",
        "Failures by kind",
    ]
    return tag(
        "section",
        {"id": "charts"},
        tag("h2", None, "Charts"),
        tag(
            "div",
            {"class": "charts"},
            join(
                tag("figure", None, tag("figcaption", None, caption), chart)
                for caption, chart in zip(captions, figures, strict=True)
            ),
        ),
    )


def _broken(report: Report) -> Markup:
    budget = REFERRER_LINKS
    rows: list[list[Cell]] = []
    for link in report.broken.rows:
        refs = link.referrers
        shown = refs.links[: max(0, budget)]
        budget -= len(shown)
        items = [
            tag(
                "li",
                None,
                _link(src, 110),
                Markup(" "),
                tag("q", None, shorten(anchor, 80)) if anchor else Markup(""),
            )
            for src, anchor in shown
        ]
        linked = join(
            [
                tag("ul", None, join(items))
                if items
                else tag("span", {"class": "more"}, "unknown"),
                _more(len(shown), refs.total, "pages"),
            ]
        )
        what = str(link.status) if link.status is not None else (link.kind or "")
        rows.append(
            [
                (_link(link.url), None),
                (_status(link.status, link.kind), what),
                (linked, None),
                (f"{refs.total:,}", refs.total),
                # "HTTP 404" says nothing the status does not
                (
                    "" if link.error == f"HTTP {link.status}" else shorten(link.error or "", 160),
                    None,
                ),
            ]
        )
    if report.exact_links:
        lead = (
            "URLs that answered 404, 410 or 5xx, or whose host could not be resolved or "
            "reached, with the pages that link to them and the link text (the first 20 "
            "per URL; the rest are counted)."
        )
    else:
        lead = (
            "URLs that answered 404, 410 or 5xx, or whose host could not be resolved or "
            "reached. This source has no link graph: each row names the page the crawler "
            "first found the link on (the record's referrer), not every page that links "
            "to it, and no link text."
        )
    body = _table(
        "broken-links",
        [
            ("URL", False),
            ("status", False),
            ("linked from", False),
            ("referrers", True),
            ("error", False),
        ],
        rows,
        shown_of=(len(report.broken.rows), report.broken.total),
        empty="No broken links.",
    )
    return _section("broken", "Broken links", lead, body)


def _redirects(report: Report) -> Markup:
    rows: list[list[Cell]] = []
    for r in report.redirects.rows:
        chain = tag("ol", None, join(tag("li", None, _link(u, 110)) for u in r.chain))
        flags = join(
            tag("span", {"class": "flag " + f.replace(" ", "-").replace("→", "-")}, f)
            for f in r.flags
        )
        rows.append(
            [
                (_link(r.url), None),
                (str(len(r.chain) - 1), len(r.chain) - 1),
                (flags, " ".join(r.flags)),
                (chain, None),
                (
                    _status(r.status)
                    if r.status is not None and not r.error
                    else esc(r.error or ""),
                    None,
                ),
            ]
        )
    tally = "; ".join(f"{flag}: {n:,}" for flag, n in report.redirect_flags.items())
    lead = (
        "Requests that were redirected, longest and most tangled first: chains of two hops "
        "or more, loops, http→https upgrades, moves to another host and redirects out of "
        f"the crawl's scope. {'Flags met: ' + tally + '.' if tally else ''}"
    )
    body = _table(
        "redirect-chains",
        [("first URL", False), ("hops", True), ("flags", False), ("chain", False), ("end", False)],
        rows,
        shown_of=(len(report.redirects.rows), report.redirects.total),
        empty="No redirects.",
    )
    return _section("redirects", "Redirect chains", lead, body)


def _pages(table_id: str, rows: Table[PageRow], *, by: str) -> Markup:
    cells: list[list[Cell]] = []
    for p in rows.rows:
        cells.append(
            [
                (_link(p.url), None),
                (fmt_seconds(p.fetch_time) if p.fetch_time else "—", p.fetch_time),
                (fmt_bytes(p.size), p.size),
                (_status(p.status), p.status if p.status is not None else 0),
                (p.content_type or "", None),
                (shorten(p.title or "", TITLE_CHARS), None),
            ]
        )
    return _table(
        table_id,
        [
            ("URL", False),
            ("response time", True),
            ("size", True),
            ("status", True),
            ("type", False),
            ("title", False),
        ],
        cells,
        shown_of=(len(rows.rows), rows.total),
        empty="No pages." if by == "size" else "No timed responses.",
    )


def _titles(report: Report) -> Markup:
    missing = _table(
        "missing-titles",
        [("URL", False), ("status", True)],
        [[(_link(r.url), None), (r.detail, r.detail)] for r in report.missing_titles.rows],
        shown_of=(len(report.missing_titles.rows), report.missing_titles.total),
        empty="Every HTML page has a title.",
    )
    groups: list[list[Cell]] = []
    for g in report.duplicate_titles.rows:
        groups.append(
            [
                (shorten(g.title, TITLE_CHARS), None),
                (f"{g.count:,}", g.count),
                (_urls(g.urls, g.count), None),
            ]
        )
    duplicate = _table(
        "duplicate-titles",
        [("title", False), ("pages", True), ("URLs", False)],
        groups,
        shown_of=(len(report.duplicate_titles.rows), report.duplicate_titles.total),
        empty="No two HTML pages share a title.",
    )
    return join(
        [
            _section(
                "missing-titles-section",
                "Missing titles",
                "HTML pages (2xx) with no <title> or an empty one.",
                missing,
            ),
            _section(
                "duplicate-titles-section",
                "Duplicate titles",
                "Titles shared by two or more HTML pages, most shared first (whitespace "
                "collapsed; the first 10 URLs of each).",
                duplicate,
            ),
        ]
    )


def _blocked(report: Report) -> Markup:
    robots = _table(
        "robots-blocked",
        [("URL", False), ("linked from", False)],
        [
            [(_link(r.url), None), (_link(r.detail, 110) if r.detail else "—", None)]
            for r in report.robots_blocked.rows
        ],
        shown_of=(len(report.robots_blocked.rows), report.robots_blocked.total),
        empty="robots.txt kept nothing out.",
    )
    meta = report.meta_robots
    if meta is None:
        meta_body = tag(
            "div",
            {"class": "tablebox"},
            tag(
                "p",
                {"class": "none"},
                "Not recorded by this source: the generic spider writes no record for a page "
                "that meta robots (noindex) keeps out, and this crawl's store kept no list of "
                "them.",
            ),
        )
    else:
        meta_body = _table(
            "meta-robots",
            [("URL", False), ("directives", False)],
            [[(_link(u), None), (d, None)] for u, d in meta.pages],
            shown_of=(len(meta.pages), meta.total),
            empty="Meta robots kept nothing out.",
        )
    return join(
        [
            _section(
                "robots",
                "Blocked by robots.txt",
                "URLs the crawl did not fetch because robots.txt disallows them for this "
                "crawler, with the page the link was first found on.",
                robots,
            ),
            _section(
                "meta-robots-section",
                "Kept out by meta robots",
                "Pages fetched but kept out of the results by <meta name=robots> or "
                "X-Robots-Tag (noindex).",
                meta_body,
            ),
        ]
    )


def _out_of_scope(report: Report) -> Markup:
    oos = report.out_of_scope
    dropped = report.info.stats.get("dropped")
    total = _num(dropped.get("out_of_scope")) if isinstance(dropped, dict) else None
    if oos is None:
        text = "Not recorded per URL by this source."
        if total is not None:
            text += f" The crawl dropped {total:,} out-of-scope links in all (its statistics)."
        body = tag("div", {"class": "tablebox"}, tag("p", {"class": "none"}, text))
    else:
        body = _table(
            "out-of-scope",
            [("URL", False), ("times met", True)],
            [[(_link(u), None), (f"{n:,}", n)] for u, n in oos.top],
            shown_of=(len(oos.top), oos.distinct),
            empty="No out-of-scope links met.",
        )
    return _section(
        "out-of-scope-section",
        "Out-of-scope links most often met",
        "Links the crawl found but did not follow because they lead outside its scope.",
        body,
    )


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(epoch))


def _num(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _title_of(report: Report) -> str:
    seeds = report.info.seeds
    if seeds:
        return f"Crawl report: {host_of(seeds[0]) or seeds[0]}" + (
            f" and {len(seeds) - 1} more" if len(seeds) > 1 else ""
        )
    return "Crawl report"


NAV = (
    ("summary", "Summary"),
    ("charts", "Charts"),
    ("broken", "Broken links"),
    ("redirects", "Redirects"),
    ("slowest", "Slowest"),
    ("largest", "Largest"),
    ("missing-titles-section", "Missing titles"),
    ("duplicate-titles-section", "Duplicate titles"),
    ("robots", "robots.txt"),
    ("meta-robots-section", "Meta robots"),
    ("out-of-scope-section", "Out of scope"),
)


def render_html(report: Report, *, generated_at: float | None = None) -> str:
    """The report as one HTML document (a str; write it as UTF-8)."""
    title = _title_of(report)
    when = _when(generated_at if generated_at is not None else time.time())
    sub = f"Built by trio-crawler on {when} from {report.info.source}."
    parts: list[Markup] = [
        _summary(report),
        _charts(report),
        _broken(report),
        _redirects(report),
        _section(
            "slowest",
            "Slowest pages",
            "Pages by response time (request sent to last byte read), slowest first.",
            _pages("slowest-pages", report.slowest, by="time"),
        ),
        _section(
            "largest",
            "Largest pages",
            "Pages by decoded body size, largest first.",
            _pages("largest-pages", report.largest, by="size"),
        ),
        _titles(report),
        _blocked(report),
        _out_of_scope(report),
    ]
    nav = tag("nav", None, join(tag("a", {"href": f"#{i}"}, label) for i, label in NAV))
    head = join(
        [
            void("meta", {"charset": "utf-8"}),
            void("meta", {"http-equiv": "Content-Security-Policy", "content": CSP}),
            void("meta", {"name": "referrer", "content": "no-referrer"}),
            void("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
            tag("title", None, title),
            Markup(f"<style>{STYLE}</style>"),
        ]
    )
    body = join(
        [
            tag("header", None, tag("h1", None, title), tag("p", None, sub), nav),
            tag("main", None, join(parts)),
            Markup(f"<script>{SCRIPT}</script>"),
        ]
    )
    return f'<!doctype html>\n<html lang="en">\n<head>{head}</head>\n<body>{body}</body>\n</html>\n'
