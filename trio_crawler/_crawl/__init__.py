"""The crawl: the engine and its stages.

Theory of operation
-------------------
:mod:`.engine` owns the crawl's nursery, its channels, the scheduler, the outstanding-work
count and the stop rule, and it is the one place where decisions about a claim take effect
(complete it, put it back, record it as failed). Everything a claim goes through between
being claimed and being settled is a *stage*, one module each; a stage takes what it needs
(settings, rules, the store, the fetcher, counters) and returns a decision
(:mod:`.outcome`); it never imports the engine or calls back into it.

``pipeline``    one claim through the stages, top to bottom
``gate``        robots.txt and sitemaps of a host
``exchange``    the hooks around a request, cookies and credentials, the fetch, the archive
``politeness``  the one owner of a host's pace (delays, Crawl-delay, pauses, throttle, keys)
``redirects``   a 3xx's next hop, checked like a link
``admission``   which requests enter the frontier (depth, rules, traps) and a page's children
``render``      a page rendered in headless Chromium before ``scrape``, every request it
                makes answered by the crawl (``render_policy``: its pure decisions)
``scraper``     the spider's ``scrape`` and ``failed``
``processor``   items on their way to ``Spider.process`` and ``crawler.items()``
``processes``   several fetch processes sharing one crawl

Where a change goes: a new per-host limit (bandwidth, say) is :mod:`.politeness` (and the
store's host state if it must hold across processes); a new stage is one module here and one
line in :class:`~.pipeline.Pipeline`.
"""

from .engine import Crawler, crawl, effective_settings, open_crawler, start_crawler

__all__ = ["Crawler", "crawl", "effective_settings", "open_crawler", "start_crawler"]
