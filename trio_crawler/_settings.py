"""One typed, validated settings object shared by the command line and the API.

Defaults are those of a polite crawler: two requests at a time per host, a quarter of a second
between request starts on one host, robots.txt obeyed, three tries. The flags that lift the
per-host limits for one's own server are ``per_host_concurrency`` and ``per_host_delay``
(``--per-host-concurrency``, ``--delay``).

One source: each field carries its meaning in ``dataclasses.field(metadata=...)`` (a
:class:`Meaning`): what it does, the sane range of a number, and for the fields the command
line sets, their flags and metavar. :meth:`Settings.validate` enforces the ranges, the command
line builds its setting flags from the same records (:func:`setting_options`), and the class
docstring (``help(Settings)``) is generated from them.

:meth:`Settings.validate` rejects nonsense with a one-line :class:`SettingsError`; it runs in
``__post_init__`` so an invalid object never exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from ._exceptions import SettingsError
from ._options import SettingOption, document, option_of, setting, value_problem

if TYPE_CHECKING:
    from ._spider import Drop, Page, Request, Retry

BeforeRequest: TypeAlias = "Callable[[Request], Awaitable[Request | Drop | None]]"
AfterResponse: TypeAlias = "Callable[[Page], Awaitable[Retry | Drop | None]]"

__version__ = "0.1.0"

DEFAULT_USER_AGENT = f"trio-crawler/{__version__} (+https://github.com/trio-crawler/trio-crawler)"

#: Query parameters removed before fingerprinting (tracking noise), as glob-like prefixes.
DEFAULT_STRIP_PARAMS: tuple[str, ...] = (
    "utm_*",
    "gclid",
    "fbclid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "yclid",
    "msclkid",
)

#: The longest delay or timeout a setting takes, in seconds (a day): beyond it is a typo.
DAY = 86_400.0

#: The command line's groups of setting flags, in the order ``--help`` shows them.
LIMITS = "limits"
POLITENESS = "concurrency and politeness"
SCOPE = "scope"
SAFETY = "retries, timeouts and safety"
TRANSPORT = "proxies, TLS and archiving"
RENDERING = "rendering in headless Chromium"
GROUPS = (LIMITS, POLITENESS, SCOPE, SAFETY, TRANSPORT, RENDERING)

#: The resource types (DevTools names) a rendered page is refused without a fetch.
DEFAULT_RENDER_REFUSED: tuple[str, ...] = ("Image", "Media", "Font")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    # the docstring is generated from the fields' meanings (at the end of this module)

    # --- concurrency
    concurrency: int = setting(
        16,
        "requests in flight over all hosts (the crawl limiter)",
        group=POLITENESS,
        flags=("-c", "--concurrency"),
        metavar="N",
        low=1,
        high=10_000,
    )
    processing_concurrency: int = setting(
        64,
        "spider.process calls at once (the processing limiter)",
        group=POLITENESS,
        flags=("--processing-concurrency",),
        metavar="N",
        low=1,
        high=100_000,
    )
    per_host_concurrency: int = setting(
        2,
        "requests in flight to one host (origin, or IP with politeness_key ip); raise it for "
        "your own server",
        group=POLITENESS,
        flags=("--per-host-concurrency",),
        metavar="N",
        low=1,
        high=10_000,
    )
    per_host_delay: float = setting(
        0.25,
        "minimum seconds between request starts on one host (robots.txt Crawl-delay raises "
        "it); 0 for your own server",
        group=POLITENESS,
        flags=("--delay",),
        metavar="SECONDS",
        low=0,
        high=DAY,
    )
    max_crawl_delay: float = setting(
        30.0,
        "cap on a robots.txt Crawl-delay (seconds)",
        group=POLITENESS,
        flags=("--max-crawl-delay",),
        metavar="SECONDS",
        low=0,
        high=DAY,
    )
    politeness_key: Literal["origin", "ip"] = setting(
        "origin",
        "politeness per origin, or per IP address (ip: shared hosting)",
        group=POLITENESS,
        flags=("--politeness-key",),
    )
    adaptive_throttle: bool = setting(
        False,
        "follow each host's latency and back off on 429/503",
        group=POLITENESS,
        flags=("--adaptive-throttle",),
    )

    # --- limits
    max_depth: int | None = setting(
        None,
        "links deeper than this are not followed (the seeds are depth 0)",
        group=LIMITS,
        flags=("--max-depth",),
        metavar="N",
        low=0,
        high=1_000_000,
    )
    max_pages: int | None = setting(
        None,
        "stop after this many pages",
        group=LIMITS,
        flags=("--max-pages",),
        metavar="N",
        low=1,
        high=10**12,
    )
    max_duration: float | None = setting(
        None,
        "stop after this many seconds",
        group=LIMITS,
        flags=("--max-duration",),
        metavar="SECONDS",
        low=0,
        above=True,
        high=365 * DAY,
    )
    max_pages_per_host: int | None = setting(
        None,
        "page budget of one host",
        group=LIMITS,
        flags=("--max-pages-per-host",),
        metavar="N",
        low=1,
        high=10**12,
    )
    max_links_per_page: int = setting(10_000, "links taken from one page", low=1, high=10**7)
    max_url_length: int = setting(
        2048, "longer URLs are dropped and counted (seeds too)", low=1, high=1_000_000
    )
    max_body_size: int = setting(
        10 * 1024 * 1024,
        "decoded bytes kept of a body; the rest is cut while streaming",
        group=LIMITS,
        flags=("--max-body-size",),
        metavar="BYTES",
        low=1,
        high=1 << 32,
        shown="10 MiB",
    )

    # --- scope
    scope: Literal["host", "domain", "any"] = setting(
        "host",
        "host: the seeds' origins (port included); domain: their registrable domains; any",
        group=SCOPE,
        flags=("--scope",),
    )
    allowed_domains: tuple[str, ...] = setting(
        (),
        "domains (and their subdomains) added to the scope",
        group=SCOPE,
        flags=("--allow-domain",),
        metavar="DOMAIN",
    )
    denied_domains: tuple[str, ...] = setting(
        (),
        "domains (and their subdomains) taken out of the scope",
        group=SCOPE,
        flags=("--deny-domain",),
        metavar="DOMAIN",
    )
    include_patterns: tuple[str, ...] = setting(
        (),
        "regular expressions: when any is given, a URL must match one to be followed (seeds too)",
        group=SCOPE,
        flags=("--include",),
        metavar="REGEX",
    )
    exclude_patterns: tuple[str, ...] = setting(
        (),
        "never follow URLs matching one of these regular expressions",
        group=SCOPE,
        flags=("--exclude",),
        metavar="REGEX",
    )
    strip_params: tuple[str, ...] = setting(
        DEFAULT_STRIP_PARAMS,
        "query parameters removed before dedupe (glob-like prefixes: utm_*)",
        shown="utm_*, gclid...",
    )
    sort_query: bool = setting(True, "sort query parameters before dedupe")

    # --- trap guards
    max_repeated_segments: int = setting(
        3,
        "a path segment repeated more than this many times marks a trap (/a/b/a/b/a/b/a)",
        low=1,
        high=1_000,
    )
    max_query_variants: int = setting(
        500, "distinct query strings followed for one path", low=1, high=10**7
    )
    max_path_depth: int = setting(
        32, "path segments beyond which a URL is treated as a trap", low=1, high=10_000
    )

    # --- politeness and robots
    obey_robots: bool = setting(
        True,
        "obey robots.txt even where the spider turns it off",
        group=POLITENESS,
        flags=("--obey-robots",),
        off_flags=("--ignore-robots",),
        off_help="do not fetch or obey robots.txt",
    )
    obey_meta_robots: bool = setting(
        True,
        "obey <meta name=robots> and X-Robots-Tag",
        group=POLITENESS,
        off_flags=("--ignore-meta-robots",),
        off_help="ignore <meta name=robots> and X-Robots-Tag",
    )
    obey_nofollow: bool = setting(
        True,
        "do not follow rel=nofollow links",
        group=POLITENESS,
        off_flags=("--ignore-nofollow",),
        off_help="follow rel=nofollow links",
    )
    user_agent: str = setting(
        DEFAULT_USER_AGENT,
        "the User-Agent header; its product token is what robots.txt rules match",
        group=POLITENESS,
        flags=("-A", "--user-agent"),
        metavar="TEXT",
        shown=f"trio-crawler/{__version__} (+https://...)",
    )
    robots_error_ttl: float = setting(
        600.0,
        "how long a robots.txt 5xx/unreachable answer disallows a host before it is tried "
        "again (seconds)",
        low=0,
        high=30 * DAY,
    )
    sitemaps: bool = setting(
        False,
        "also crawl the URLs of each site's sitemaps (robots.txt Sitemap:, /sitemap.xml)",
        group=POLITENESS,
        flags=("--sitemaps",),
    )

    # --- retries and timeouts
    max_retries: int = setting(
        2,
        "retries after the first try",
        group=SAFETY,
        flags=("--max-retries",),
        metavar="N",
        low=0,
        high=100,
    )
    retry_backoff: float = setting(
        0.5, "first backoff before a retry (seconds), doubled each time", low=0, high=DAY
    )
    retry_backoff_max: float = setting(60.0, "longest backoff (seconds)", low=0, high=DAY)
    max_retry_after: float = setting(
        120.0,
        "a Retry-After longer than this (seconds) fails the URL (retry_after_too_long)",
        low=0,
        high=7 * DAY,
    )
    max_rate_limit_waits: int = setting(
        5,
        "a request the spider's rate_limit_delay sends back more often than this fails as "
        "rate_limited (each wait is the spider's; GitHub's spider doubles them)",
        low=1,
        high=1000,
    )
    connect_timeout: float = setting(
        10.0,
        "seconds to wait for a connection (TCP and TLS)",
        group=SAFETY,
        flags=("--connect-timeout",),
        metavar="SECONDS",
        low=0,
        above=True,
        high=DAY,
    )
    read_timeout: float = setting(
        20.0,
        "seconds to wait for each read from the server",
        group=SAFETY,
        flags=("--read-timeout",),
        metavar="SECONDS",
        low=0,
        above=True,
        high=DAY,
    )
    request_timeout: float = setting(
        60.0,
        "whole-request deadline (seconds): a dripping server cannot hold a fetcher longer",
        group=SAFETY,
        flags=("--timeout",),
        metavar="SECONDS",
        low=0,
        above=True,
        high=DAY,
    )
    max_redirects: int = setting(
        10,
        "redirect hops followed from one URL",
        group=SAFETY,
        flags=("--max-redirects",),
        metavar="N",
        low=0,
        high=100,
    )
    keepalive_connections: int = setting(
        4096,
        "idle keep-alive connections kept crawl-wide, each for its host's next request (the "
        "least recently used closed first; fewer when the open-file limit is lower)",
        group=TRANSPORT,
        flags=("--keepalive-connections",),
        metavar="N",
        low=0,
        high=1_000_000,
    )

    # --- network safety
    allow_private: bool = setting(
        False,
        "allow loopback/private/link-local targets beyond the seeds' own host:port",
        group=SAFETY,
        flags=("--allow-private",),
    )
    allowed_addresses: tuple[str, ...] = setting(
        (),
        "address:port pairs the address guard lets through",
        group=SAFETY,
        flags=("--allow-address",),
        metavar="ADDR:PORT",
    )

    # --- transport: proxies, TLS, archiving
    proxy: str | None = setting(
        None,
        "send every request through this proxy (http://, https:// or socks5://)",
        group=TRANSPORT,
        flags=("--proxy",),
        metavar="URL",
    )
    proxy_rules: tuple[tuple[str, str], ...] = setting(
        (),
        "proxy (or 'direct') for HOST or *.DOMAIN, checked before proxy",
        group=TRANSPORT,
        flags=("--proxy-rule",),
        metavar="HOST=URL",
        syntax="HOST=URL",
    )
    trust_env: bool = setting(
        False,
        "honour HTTP_PROXY/HTTPS_PROXY/NO_PROXY and SSL_CERT_FILE from the environment",
        group=TRANSPORT,
        flags=("--trust-env",),
    )
    verify_tls: bool = setting(
        True,
        "verify TLS certificates",
        group=TRANSPORT,
        off_flags=("-k", "--insecure"),
        off_help="do not verify TLS certificates (intercepting proxy, lab target)",
    )
    ca_bundle: str | None = setting(
        None,
        "also trust the certificate authorities in this PEM file (an intercepting proxy's CA)",
        group=TRANSPORT,
        flags=("--ca-bundle",),
        metavar="PEM",
    )
    client_cert: str | None = setting(
        None,
        "present this PEM client certificate (with its key, or give client_key)",
        group=TRANSPORT,
        flags=("--client-cert",),
        metavar="PEM",
    )
    client_key: str | None = setting(
        None,
        "the client certificate's key (PEM)",
        group=TRANSPORT,
        flags=("--client-key",),
        metavar="PEM",
    )
    warc: str | None = setting(
        None,
        "archive every request and response (failures and redirects too) in this WARC 1.1 file",
        group=TRANSPORT,
        flags=("--warc",),
        metavar="FILE",
    )
    warc_max_size: int = setting(
        1 << 30,
        "start a new WARC file (NAME-00001.warc.gz...) past this size",
        group=TRANSPORT,
        flags=("--warc-max-size",),
        metavar="BYTES",
        low=1,
        high=1 << 40,
        shown="1 GiB",
    )

    # --- rendering (see trio_crawler/_crawl/render.py)
    render: Literal["on", "off", "auto"] | None = setting(
        None,
        "render pages in headless Chromium before scraping: on (every HTML page), off, or "
        "auto (pages that look script-built); --render alone is on; unset: the spider "
        "decides (its render attribute; Request.render first)",
        group=RENDERING,
        flags=("--render",),
        const="on",
    )
    render_concurrency: int | None = setting(
        None,
        "pages rendering at once (browser tabs; a trio.CapacityLimiter of its own, not a "
        "fetch slot); with --processes N each process renders its share",
        group=RENDERING,
        flags=("--render-concurrency",),
        metavar="N",
        low=1,
        high=1000,
        shown="2 per core",
    )
    render_timeout: float = setting(
        15.0,
        "seconds a page may take to render, after its fetch; a page not done by then is cut "
        "and scraped as it stands",
        group=RENDERING,
        flags=("--render-timeout",),
        metavar="SECONDS",
        low=0,
        above=True,
        high=3600,
    )
    render_quiet: float = setting(
        0.1,
        "a rendered page is done at its load event plus this many seconds without a request "
        "in flight",
        group=RENDERING,
        flags=("--render-quiet",),
        metavar="SECONDS",
        low=0,
        high=10,
    )
    render_scope: Literal["site", "any"] = setting(
        "site",
        "what a rendered page may load: site (its own registrable domain, or the crawl's "
        "scope) or any origin; robots.txt, politeness and the address guard apply either way",
        group=RENDERING,
        flags=("--render-scope",),
    )
    render_refused_types: tuple[str, ...] = setting(
        DEFAULT_RENDER_REFUSED,
        "resource types (DevTools names) a rendered page is refused without a fetch",
        shown="Image, Media, Font",
    )
    render_js_heap: int = setting(
        256,
        "a rendered page's JavaScript heap (MiB); over it, its render fails",
        low=16,
        high=65_536,
    )
    render_max_memory: int = setting(
        2 * 1024**3,
        "Chromium's memory (bytes, proportional set size of its processes) over which it is "
        "replaced by a new one once its pages end",
        low=64 * 1024**2,
        high=1 << 40,
        shown="2 GiB",
    )
    render_pages_per_browser: int = setting(
        1000,
        "pages one Chromium renders before it is replaced by a new one",
        low=1,
        high=10**9,
    )
    screenshots: str | None = setting(
        None,
        "save a PNG of each rendered page in this directory, named by the page's fingerprint "
        "(the record lists it)",
        group=RENDERING,
        flags=("--screenshots",),
        metavar="DIR",
    )

    # --- behaviour
    fail_fast: bool = setting(
        False,
        "stop the crawl at the first exception from spider code",
        group=SAFETY,
        flags=("--fail-fast",),
    )
    items_buffer: int = setting(
        64,
        "buffer of the opt-in crawler.items() channel; a slow reader applies backpressure",
        low=1,
        high=1_000_000,
    )
    headers: Mapping[str, str] = setting(
        factory=dict,
        help="headers sent with every request (the spider's and the request's own win)",
        group=POLITENESS,
        flags=("-H", "--header"),
        metavar="'NAME: VALUE'",
        syntax="NAME: VALUE",
        shown="{}",
    )
    cookies: bool = setting(
        True,
        "keep cookies, each only for the origin that set it",
        group=POLITENESS,
        off_flags=("--no-cookies",),
        off_help="do not keep cookies (by default each origin gets back only its own)",
    )
    credentials: tuple[tuple[str, str], ...] = setting(
        (),
        "credentials for HOST only (HOST=bearer:TOKEN for a bearer token)",
        group=POLITENESS,
        flags=("--auth",),
        metavar="HOST=USER:PASSWORD",
        syntax="HOST=USER:PASSWORD",
    )
    order: Literal["breadth", "depth"] = setting(
        "breadth",
        "within a host, after Request.priority: breadth-first or depth-first",
        group=POLITENESS,
        flags=("--order",),
    )
    dedupe_content: bool = setting(
        False,
        "do not follow the links of a page whose body was already seen (mirrors, session ids)",
        group=POLITENESS,
        flags=("--dedupe-content",),
    )
    link_graph: bool = setting(
        False,
        "keep the crawl's link graph in its store (who links to each URL, with the anchor "
        "text; out-of-scope links met; pages noindex kept out), for the report; --report "
        "turns it on",
    )
    before_request: tuple[BeforeRequest, ...] = setting(
        (), "async hooks run before each request, before the spider's own"
    )
    after_response: tuple[AfterResponse, ...] = setting(
        (), "async hooks run after each response, before the spider's own"
    )

    #: The fields that identify a crawl with its seeds and spider: a stored crawl resumes only
    #: with the same values (they decide which URLs belong to it and how they are deduped).
    IDENTITY: ClassVar[tuple[str, ...]] = (
        "scope",
        "allowed_domains",
        "denied_domains",
        "include_patterns",
        "exclude_patterns",
        "strip_params",
        "sort_query",
    )

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> Settings:
        unknown = sorted(set(changes) - self.field_names())
        if unknown:
            raise SettingsError(f"unknown setting {unknown[0]!r}")
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        for option in setting_options():
            problem = value_problem(option, getattr(self, option.name))
            if problem is not None:
                raise SettingsError(f"{option.name} {problem}")
        if self.credentials:
            from ._session import Credentials

            Credentials(self.credentials)  # raises SettingsError on a bad entry
        for proxy in (self.proxy, *(target for _, target in self.proxy_rules)):
            if proxy is None or proxy == "direct":
                continue
            scheme = proxy.partition("://")[0].lower()
            if scheme not in ("http", "https", "socks5", "socks5h") or "://" not in proxy:
                raise SettingsError(
                    f"proxy must be http://, https:// or socks5:// HOST:PORT, not {proxy!r}"
                )
        if self.client_key and not self.client_cert:
            raise SettingsError("client_key needs client_cert")
        for hook in (*self.before_request, *self.after_response):
            if not callable(hook):
                raise SettingsError(f"a hook must be an async callable, not {hook!r}")
        for pattern in (*self.include_patterns, *self.exclude_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SettingsError(f"bad URL pattern {pattern!r}: {exc}") from None
        if not self.user_agent.strip() or any(c in self.user_agent for c in "\r\n"):
            raise SettingsError("user_agent must be a non-empty single line")
        if self.render_quiet >= self.render_timeout:
            raise SettingsError(
                f"render_quiet ({self.render_quiet:g}) must be below render_timeout "
                f"({self.render_timeout:g})"
            )
        for addr in self.allowed_addresses:
            host, sep, port = addr.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise SettingsError(f"allowed address must be ADDRESS:PORT, not {addr!r}")


_OPTIONS: tuple[SettingOption, ...] = tuple(option_of(f) for f in dataclasses.fields(Settings))


def setting_options() -> tuple[SettingOption, ...]:
    """Every field of :class:`Settings` with its meaning, in declaration order."""
    return _OPTIONS


Settings.__doc__ = document(
    "Everything a crawl can be told. Immutable; derive variants with :meth:`replace`.\n\n"
    "An invalid value raises a one-line SettingsError when the object is made.",
    _OPTIONS,
)
