"""What a stage decides about a claim. The engine applies every decision in one place
(:meth:`~trio_crawler._crawl.engine.Crawler._apply`): a stage never settles a claim itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeAlias

from .._exceptions import FailureKind
from .._graph import PageGraph
from .._spider import Request
from .._store import NewRequest


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """Complete the claim: queue ``new`` (deduped by the store) and commit ``items``.

    ``hop``: ``new`` is a redirect's next hop (a target seen before is counted as
    ``redirect_to_seen``). ``error``: spider code raised on the page (``--fail-fast`` stops
    the crawl). ``graph``: what the page adds to the link graph (``Settings.link_graph``),
    committed with the page. ``refused``: links their host's robots.txt (already known)
    disallows (:meth:`~.gate.RobotsGate.sort_out`): marked seen, the new ones recorded as
    failed, never queued.
    """

    new: Sequence[NewRequest] = ()
    items: Sequence[Any] = ()
    hop: bool = False
    error: BaseException | None = None
    graph: PageGraph | None = None
    refused: Sequence[NewRequest] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Again:
    """Put the claim back: ``request`` (the claim's, updated) starts no sooner than ``delay``
    seconds from now. Counting it as a retry is the deciding stage's business."""

    request: Request
    delay: float


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    """The request ends without a page for ``scrape``: recorded, handed to ``Spider.failed``."""

    kind: FailureKind
    message: str
    status: int | None = None
    #: Seconds from the start of the fetch to the failure (0: nothing was fetched).
    elapsed: float = 0.0


Outcome: TypeAlias = Done | Again | Failed
