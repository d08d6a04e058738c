"""One typed, validated settings object shared by the command line and the API.

Defaults are those of a polite crawler: two requests at a time per host, a quarter of a second
between request starts on one host, robots.txt obeyed, three tries. The flags that lift the
per-host limits for one's own server are ``per_host_concurrency`` and ``per_host_delay``
(``--per-host-concurrency``, ``--delay``).

:meth:`Settings.validate` rejects nonsense with a one-line :class:`SettingsError`; it runs in
``__post_init__`` so an invalid object never exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from ._exceptions import SettingsError

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


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a crawl can be told. Immutable; derive variants with :meth:`replace`."""

    # --- concurrency
    concurrency: int = 16
    """Requests in flight at once, over all hosts (the crawl limiter)."""
    processing_concurrency: int = 64
    """``Spider.process`` calls running at once (the processing limiter)."""
    per_host_concurrency: int = 2
    """Requests in flight at once to one host (origin, or IP with ``politeness_key="ip"``)."""
    per_host_delay: float = 0.25
    """Minimum seconds between request starts on one host. robots.txt Crawl-delay raises it."""
    max_crawl_delay: float = 30.0
    """Cap on a robots.txt Crawl-delay (seconds)."""
    politeness_key: Literal["origin", "ip"] = "origin"
    adaptive_throttle: bool = False
    """Follow each host's observed latency and back off on 429/503."""

    # --- limits
    max_depth: int | None = None
    max_pages: int | None = None
    max_duration: float | None = None
    max_pages_per_host: int | None = None
    max_links_per_page: int = 10_000
    max_url_length: int = 2048
    max_body_size: int = 10 * 1024 * 1024

    # --- scope
    scope: Literal["host", "domain", "any"] = "host"
    """``host``: the start URLs' origins (port included); ``domain``: their registrable domains."""
    allowed_domains: tuple[str, ...] = ()
    denied_domains: tuple[str, ...] = ()
    include_patterns: tuple[str, ...] = ()
    """Regular expressions: when any is given, a URL must match one to be followed."""
    exclude_patterns: tuple[str, ...] = ()
    strip_params: tuple[str, ...] = DEFAULT_STRIP_PARAMS
    sort_query: bool = True

    # --- trap guards
    max_repeated_segments: int = 3
    """A path segment repeated more than this many times marks a trap (``/a/b/a/b/a/b/a``)."""
    max_query_variants: int = 500
    """Distinct query strings followed for one path."""
    max_path_depth: int = 32
    """Path segments beyond which a URL is treated as a trap."""

    # --- politeness and robots
    obey_robots: bool = True
    obey_meta_robots: bool = True
    obey_nofollow: bool = True
    user_agent: str = DEFAULT_USER_AGENT
    robots_error_ttl: float = 600.0
    """How long a robots.txt 5xx/unreachable answer disallows a host before it is tried again."""
    sitemaps: bool = False

    # --- retries and timeouts
    max_retries: int = 2
    """Retries after the first try (3 tries in all)."""
    retry_backoff: float = 0.5
    retry_backoff_max: float = 60.0
    max_retry_after: float = 120.0
    """A Retry-After longer than this fails the URL (``retry_after_too_long``)."""
    max_rate_limit_waits: int = 5
    """A request the spider's ``rate_limit_delay`` sends back more often than this fails as
    ``rate_limited`` (each wait is the spider's; GitHub's spider doubles them)."""
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    request_timeout: float = 60.0
    """Whole-request deadline: a dripping server cannot hold a fetcher longer."""
    max_redirects: int = 10

    # --- network safety
    allow_private: bool = False
    """Allow loopback/private/link-local targets beyond the seeds' own host:port."""
    allowed_addresses: tuple[str, ...] = ()
    """Extra ``address:port`` pairs the address guard lets through (tests use this)."""

    # --- transport: proxies, TLS, archiving
    proxy: str | None = None
    """Send every request through this proxy (``http://``, ``https://`` or ``socks5://``)."""
    proxy_rules: tuple[tuple[str, str], ...] = ()
    """``(host or *.domain, proxy URL or "direct")`` pairs, checked before ``proxy``."""
    trust_env: bool = False
    """Honour HTTP_PROXY/HTTPS_PROXY/NO_PROXY and SSL_CERT_FILE from the environment."""
    verify_tls: bool = True
    """Verify certificates (turn off for an intercepting proxy or a lab target)."""
    ca_bundle: str | None = None
    """A PEM file of extra certificate authorities to trust (an intercepting proxy's CA)."""
    client_cert: str | None = None
    """A PEM client certificate (with its key, or give ``client_key``) presented to servers."""
    client_key: str | None = None
    warc: str | None = None
    """Write every request and response (failures and redirects too) to this WARC file."""
    warc_max_size: int = 1 << 30
    """Rotate WARC files at this size (bytes)."""

    # --- behaviour
    fail_fast: bool = False
    """Stop the crawl at the first exception from spider code."""
    items_buffer: int = 64
    """Buffer of the opt-in ``crawler.items()`` channel; a slow reader applies backpressure."""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Headers sent with every request (the spider's and the request's own win)."""
    cookies: bool = True
    """Keep cookies, each only for the origin that set it."""
    credentials: tuple[tuple[str, str], ...] = ()
    """``(host, "user:password" | "bearer:TOKEN")`` pairs: Authorization sent to that host only."""
    order: Literal["breadth", "depth"] = "breadth"
    """Within a host, serve higher ``Request.priority`` first, then breadth- or depth-first."""
    dedupe_content: bool = False
    """Skip link extraction on a page whose body was already seen (mirrors, session ids)."""
    link_graph: bool = False
    """Keep the crawl's link graph in its store (who links to each URL, with the anchor text;
    out-of-scope links met; pages noindex kept out), for the report. ``--report`` turns it on."""
    before_request: tuple[BeforeRequest, ...] = ()
    """Async hooks run before each request, before the spider's own (see :mod:`._hooks`)."""
    after_response: tuple[AfterResponse, ...] = ()
    """Async hooks run after each response, before the spider's own."""

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
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingsError(f"{name} must be a whole number of at least 1, not {value!r}")

        def optional_positive_int(name: str) -> None:
            if getattr(self, name) is not None:
                positive_int(name)

        def non_negative(name: str, *, allow_zero: bool = True) -> None:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SettingsError(f"{name} must be a number, not {value!r}")
            if value < 0 or (not allow_zero and value == 0) or value != value:
                need = "at least 0" if allow_zero else "more than 0"
                raise SettingsError(f"{name} must be {need}, not {value!r}")

        for name in (
            "concurrency",
            "processing_concurrency",
            "per_host_concurrency",
            "max_links_per_page",
            "max_url_length",
            "max_body_size",
            "max_repeated_segments",
            "max_query_variants",
            "max_path_depth",
            "items_buffer",
            "max_rate_limit_waits",
        ):
            positive_int(name)
        for name in ("max_pages", "max_pages_per_host"):
            optional_positive_int(name)
        if self.max_depth is not None and (
            not isinstance(self.max_depth, int) or self.max_depth < 0
        ):
            raise SettingsError(f"max_depth must be 0 or more, not {self.max_depth!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise SettingsError(f"max_retries must be 0 or more, not {self.max_retries!r}")
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise SettingsError(f"max_redirects must be 0 or more, not {self.max_redirects!r}")
        for name in (
            "per_host_delay",
            "max_crawl_delay",
            "retry_backoff",
            "retry_backoff_max",
            "max_retry_after",
            "robots_error_ttl",
        ):
            non_negative(name)
        for name in ("connect_timeout", "read_timeout", "request_timeout"):
            non_negative(name, allow_zero=False)
        if self.max_duration is not None:
            non_negative("max_duration", allow_zero=False)
        if self.scope not in ("host", "domain", "any"):
            raise SettingsError(f"scope must be host, domain or any, not {self.scope!r}")
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
        positive_int("warc_max_size")
        if self.order not in ("breadth", "depth"):
            raise SettingsError(f"order must be breadth or depth, not {self.order!r}")
        for hook in (*self.before_request, *self.after_response):
            if not callable(hook):
                raise SettingsError(f"a hook must be an async callable, not {hook!r}")
        if self.politeness_key not in ("origin", "ip"):
            raise SettingsError(f"politeness_key must be origin or ip, not {self.politeness_key!r}")
        for pattern in (*self.include_patterns, *self.exclude_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SettingsError(f"bad URL pattern {pattern!r}: {exc}") from None
        if not self.user_agent.strip() or any(c in self.user_agent for c in "\r\n"):
            raise SettingsError("user_agent must be a non-empty single line")
        for addr in self.allowed_addresses:
            host, sep, port = addr.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise SettingsError(f"allowed address must be ADDRESS:PORT, not {addr!r}")
