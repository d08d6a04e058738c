"""The broad-crawl benchmark's site: N hosts x P pages, deterministic from a seed (pure, stdlib).

Shared by the server (which builds each page when it is asked for it), the ideal-crawler
simulation and the check, so all three see the same links and the same latencies.

Hosts ``h00000.bench.test`` .. (one name and one loopback address each, 127.1.0.0 upwards),
pages ``/`` (page 0) and ``/page-I.html`` (I = 1 .. P-1), and per host::

    /robots.txt            User-agent: * / Disallow: /private/
    /private/p-I.html      disallowed; one page in three links to one

Links of page I of host H (about 12, ~10 KB of HTML with the filler text):

* its own host: home (``/``), its children ``2I+1`` and ``2I+2`` in a binary tree of the host's
  pages (relative ``page-K.html``), two more pages of the host at random (root-relative);
* other hosts (absolute URLs): the roots of H's *child hosts*, and two random pages of hosts
  with a smaller number ("back links": they never reach a host earlier than the tree does).

The hosts form a tree: the crawl's seeds are the roots of hosts ``0 .. seeds-1``; host
``C >= seeds`` is a child of host ``(C - seeds) // fanout`` and is linked from page
``j % P`` of it (``j``: its rank among the siblings). A host is therefore found only when the
right page of its parent host has been fetched: discovery spreads breadth-first from the seeds,
one generation per level of the tree (depth about log_fanout(N / seeds)), and a correct crawl
finds every page of every host. Every page links home, so a page reached by a back link leads
to the whole host.

Each response is answered after ``latency +/- jitter`` seconds, a deterministic function of the
host and the path (:meth:`Site.delay`), so the simulation knows the latency of every request.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator

DOMAIN = "bench.test"
SEED = 20_250_320
FILLER_BLOCKS = 64
FILLER_BYTES = 9_300  # plus the links and markup: about 10 KB a page
_DOT_DOMAIN = ("." + DOMAIN).encode()
ROBOTS = b"User-agent: *\nDisallow: /private/\n"
PRIVATE_EVERY = 3
SAME_HOST_RANDOM = 2
BACK_LINKS = 2

ROBOTS_PAGE = -1  # page codes in the server's log for the paths that are not pages
PRIVATE_PAGE = -2
OTHER_PAGE = -3

_MASK = 2**64 - 1


class _Rng:
    """A tiny deterministic generator (an LCG with an output mix): cheaper to seed per page
    than ``random.Random``, and the same on every Python version."""

    __slots__ = ("_x",)

    def __init__(self, seed: int) -> None:
        self._x = (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK

    def below(self, n: int) -> int:
        self._x = (self._x * 6364136223846793005 + 1442695040888963407) & _MASK
        z = self._x ^ (self._x >> 29)
        return ((z * 0xBF58476D1CE4E5B9) & _MASK) % n


def _filler(seed: int) -> list[bytes]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "pi", "da", "ge", "ho", "ju"]
    rng = _Rng(seed)
    blocks = []
    for _ in range(FILLER_BLOCKS):
        words: list[str] = []
        size = 0
        while size < FILLER_BYTES:
            word = "".join(syllables[rng.below(len(syllables))] for _ in range(1 + rng.below(4)))
            words.append(word)
            size += len(word) + 1
        text = " ".join(words)
        # paragraphs of about 600 bytes
        paras = [text[i : i + 600] for i in range(0, len(text), 600)]
        blocks.append("".join(f"<p>{p}</p>\n" for p in paras).encode())
    return blocks


@dataclasses.dataclass(frozen=True)
class Link:
    """One link of a page: to page ``page`` of host ``host`` (``PRIVATE_PAGE``: a disallowed
    path of that host), written as ``href``."""

    host: int
    page: int
    href: str


@dataclasses.dataclass(frozen=True)
class Site:
    hosts: int
    pages: int
    port: int
    https: bool = False
    seeds: int = 4
    fanout: int = 8
    latency: float = 0.050
    jitter: float = 0.020
    seed: int = SEED

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.pages < 1 or self.seeds < 1 or self.fanout < 1:
            raise ValueError("hosts, pages, seeds and fanout must be at least 1")
        if self.hosts > 99_999:
            raise ValueError("at most 99,999 hosts")
        if not 0 <= self.jitter <= self.latency:
            raise ValueError("the jitter must be between 0 and the latency")

    # ------------------------------------------------------------------ names and addresses

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @staticmethod
    def host_name(h: int) -> str:
        return f"h{h:05d}.{DOMAIN}"

    @staticmethod
    def address(h: int) -> str:
        """Host ``h``'s loopback address: 127.1.0.0 upwards (127.0.0.0/16 is left alone)."""
        return f"127.{1 + (h >> 16)}.{(h >> 8) & 255}.{h & 255}"

    def origin(self, h: int) -> str:
        return f"{self.scheme}://{self.host_name(h)}:{self.port}"

    def host_id(self, name: bytes) -> int | None:
        """The host number of a Host header value (``h00042.bench.test:PORT``), or None."""
        name = name.strip().lower()
        colon = name.rfind(b":")
        if colon > 0 and name[colon + 1 :].isdigit():
            name = name[:colon]
        if len(name) != 7 + len(DOMAIN) or name[:1] != b"h" or name[6:] != _DOT_DOMAIN:
            return None
        digits = name[1:6]
        if not digits.isdigit():
            return None
        h = int(digits)
        return h if h < self.hosts else None

    # ------------------------------------------------------------------ paths

    @staticmethod
    def page_path(i: int) -> str:
        return "/" if i == 0 else f"/page-{i}.html"

    def page_code(self, path: bytes) -> int:
        """The page number of a request target, or ROBOTS_PAGE / PRIVATE_PAGE / OTHER_PAGE."""
        if path == b"/":
            return 0
        if path.startswith(b"/page-") and path.endswith(b".html"):
            digits = path[6:-5]
            if digits.isdigit() and digits[:1] != b"0":
                i = int(digits)
                if 0 < i < self.pages:
                    return i
            return OTHER_PAGE
        if path == b"/robots.txt":
            return ROBOTS_PAGE
        if path.startswith(b"/private/"):
            return PRIVATE_PAGE
        return OTHER_PAGE

    def url(self, h: int, i: int) -> str:
        return self.origin(h) + self.page_path(i)

    def seed_urls(self) -> list[str]:
        return [self.origin(h) + "/" for h in range(min(self.seeds, self.hosts))]

    def expected_urls(self) -> set[str]:
        """Every page of every host: what a correct crawl fetches, each once."""
        return {self.url(h, i) for h in range(self.hosts) for i in range(self.pages)}

    # ------------------------------------------------------------------ the link graph

    def parent(self, h: int) -> int | None:
        return None if h < self.seeds else (h - self.seeds) // self.fanout

    def children(self, h: int) -> range:
        first = self.seeds + h * self.fanout
        return range(min(first, self.hosts), min(first + self.fanout, self.hosts))

    def links(self, h: int, i: int) -> list[Link]:
        """The links of page ``i`` of host ``h``, in document order."""
        p = self.pages
        rng = _Rng(self.seed ^ (h * 100_003 + i))
        out = [Link(h, 0, "/")]
        for child in (2 * i + 1, 2 * i + 2):
            if child < p:
                out.append(Link(h, child, f"page-{child}.html"))
        for _ in range(SAME_HOST_RANDOM):
            k = rng.below(p)
            out.append(Link(h, k, self.page_path(k)))
        if i % PRIVATE_EVERY == 1:
            out.append(Link(h, PRIVATE_PAGE, f"/private/p-{i}.html"))
        for rank, c in enumerate(self.children(h)):
            if rank % p == i:
                out.append(Link(c, 0, self.origin(c) + "/"))
        if h > 0:
            for _ in range(BACK_LINKS):
                other, k = rng.below(h), rng.below(p)
                out.append(Link(other, k, self.url(other, k)))
        return out

    def page_links(self) -> Iterator[tuple[int, int, list[Link]]]:
        for h in range(self.hosts):
            for i in range(self.pages):
                yield h, i, self.links(h, i)

    # ------------------------------------------------------------------ latency and bodies

    def delay(self, h: int, code: int) -> float:
        """The server's answer delay for page ``code`` of host ``h`` (any code of page_code)."""
        u = zlib.crc32(b"%d %d" % (h, code), self.seed & 0xFFFFFFFF) / 2**32
        return self.latency + self.jitter * (2 * u - 1)

    def body(self, h: int, i: int, filler: list[bytes]) -> bytes:
        """Page ``i`` of host ``h`` (``filler``: :meth:`filler`, made once)."""
        name = self.host_name(h)
        nav = "".join(
            f'<li><a href="{link.href}">link {n}</a></li>\n'
            for n, link in enumerate(self.links(h, i))
        )
        return b"".join(
            (
                f"<!doctype html>\n<html><head><meta charset=utf-8>"
                f"<title>{name} page {i}</title></head>\n<body><h1>{name}: page {i}</h1>\n"
                f"<ul>\n{nav}</ul>\n".encode(),
                filler[(h * self.pages + i) % len(filler)],
                b"</body></html>\n",
            )
        )

    def filler(self) -> list[bytes]:
        return _filler(self.seed)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)
