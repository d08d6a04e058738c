"""The crawl report: one self-contained HTML file with the answers of a site audit.

Theory of operation
-------------------
Data flows one way::

    source ──records──> Aggregator ──(once: broken URLs)──> CrawlGraph ──> Report ──> HTML
                          (pure, bounded)                   (optional)    (frozen)

* A **source** (``sources.py``) gives a :class:`ReportInput`: an iterator of page records in
  the generic spider's format (``trio_crawler.spiders.generic.PageRecord`` as a dict), a
  :class:`CrawlInfo` (seeds, settings that matter, stop reason, times, the statistics of
  ``--stats-json``, plain notes on what the source lacks) and, optionally, a
  :class:`CrawlGraph`: what a store knows beyond the records (who links to a URL and with what
  text, out-of-scope links met, pages meta robots kept out: :mod:`trio_crawler._graph`,
  kept by a store when the crawl ran with ``Settings.link_graph``, which ``--report`` turns
  on). Sources: JSON Lines of ``trio-crawler crawl``; a ``--state`` SQLite file and a Redis
  crawl, each with its store's graph; the running crawl itself (:class:`ReportSink`, an
  exporter, with the memory store's graph).
* The **aggregator** (``aggregate.py``) is pure and synchronous. It reads each record once
  and keeps bounded state: counters, fixed log-spaced histograms, a time series whose bins
  widen, top-K heaps, the first N rows of each table, and two capped maps (hosts, titles).
  A 100,000-page crawl builds in a few seconds and well under 300 MB
  (``scripts/bench_report.py``).
* When the records are done, :meth:`Aggregator.finish` asks the graph once for the referrers
  of the broken links it lists (a few hundred URLs at most), then freezes a :class:`Report`.
  Without a graph each broken link names its record's ``referrer``, and the report says so.
* The **HTML** (``page.py``, ``charts.py``) is one string: inline CSS, inline SVG charts
  drawn by this package (no library: axes, units, percentile markers and tooltips are a few
  hundred lines), and a few lines of plain JavaScript that sort and filter the tables (the
  page reads the same without it). Every string from the crawl is escaped (``markup.py``);
  a Content-Security-Policy admits only this file's own style and script, by hash, and no
  network at all.
* The **command** (``command.py``): ``trio-crawler report CRAWL -o FILE`` and ``crawl ...
  --report FILE``. The file is written beside its target and renamed over it: a failure never
  leaves a half-written or emptied report.
"""

from .aggregate import Aggregator as Aggregator
from .aggregate import Limits as Limits
from .aggregate import Report as Report
from .aggregate import build_report as build_report
from .command import CrawlReport as CrawlReport
from .command import add_report_parser as add_report_parser
from .command import open_crawl_report as open_crawl_report
from .command import report_main as report_main
from .command import write_report as write_report
from .model import CrawlGraph as CrawlGraph
from .model import CrawlInfo as CrawlInfo
from .model import MemoryCrawlGraph as MemoryCrawlGraph
from .model import MetaRobotsPages as MetaRobotsPages
from .model import OutOfScopeLinks as OutOfScopeLinks
from .model import Referrers as Referrers
from .model import ReportInput as ReportInput
from .page import render_html as render_html
from .sources import ReportError as ReportError
from .sources import ReportSink as ReportSink
from .sources import open_input as open_input

__all__ = [
    "Aggregator",
    "CrawlGraph",
    "CrawlInfo",
    "CrawlReport",
    "Limits",
    "MemoryCrawlGraph",
    "MetaRobotsPages",
    "OutOfScopeLinks",
    "Referrers",
    "Report",
    "ReportError",
    "ReportInput",
    "ReportSink",
    "add_report_parser",
    "build_report",
    "open_crawl_report",
    "open_input",
    "render_html",
    "report_main",
    "write_report",
]
