"""HTTP for the crawler: one GET at a time, bounded, guarded, with errors as failure kinds.

The floors, each importing only the ones below it:

``fetcher``     :class:`Fetcher`: one exchange under the request deadline; body read and
                decoded within bounds (``decode``); errors to :class:`~trio_crawler.FetchError`
``transport``   a request's route: the crawl's connections, or a proxy
``connections`` keep-alive connections per origin
``http11``      one HTTP/1.1 connection: the request written, the response parsed (llhttp
                for each head; ``framing`` for where heads and bodies end, as browsers read)
``backend``     dialling through the resolver and the address guard; plain TCP streams
``guard``       which addresses may be dialled (pure)    ``dns``  the resolver seam and cache
``hosts``       the hosts file, read once, under ``dns``
``proxy``  ``tls``  ``errors``  ``decode``: routing, the TLS context, failure kinds, decoders

No byte a site sends surfaces as anything but a response or a :class:`~trio_crawler.FetchError`
of a failure kind (``tests/test_garbage.py`` feeds garbage through whole crawls).

Nothing here follows redirects, keeps cookies or knows about robots.txt: that is crawl
policy (:mod:`trio_crawler._crawl`).
"""

from .backend import GuardedBackend
from .dns import Resolver, SystemResolve
from .fetcher import (
    Fetcher,
    FetchResult,
    WindowBudget,
    decode_location,
    failure_request,
    to_exchange,
)
from .guard import AddressGuard, allow_seed_hosts, is_public_address
from .http11 import Pace

__all__ = [
    "AddressGuard",
    "FetchResult",
    "Fetcher",
    "GuardedBackend",
    "Pace",
    "Resolver",
    "SystemResolve",
    "WindowBudget",
    "allow_seed_hosts",
    "decode_location",
    "failure_request",
    "is_public_address",
    "to_exchange",
]
