"""robots.txt policy and cache: pure, no sockets."""

from __future__ import annotations

import dataclasses
import random

import pytest

from trio_crawler._robots import (
    ROBOTS_MAX_BYTES,
    RobotsCache,
    RobotsPolicy,
    robots_url,
    user_agent_token,
)
from trio_crawler._settings import DEFAULT_USER_AGENT

TOKEN = "trio-crawler"
BASE = "http://example.com"


def parse(text: str | bytes, *, now: float = 0.0) -> RobotsPolicy:
    body = text.encode() if isinstance(text, str) else text
    return RobotsPolicy.from_response(200, body, now=now, error_ttl=600.0)


# --- helpers


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://h:8080", "http://h:8080/robots.txt"),
        ("https://example.com", "https://example.com/robots.txt"),
        ("https://example.com/", "https://example.com/robots.txt"),
        ("https://example.com/some/page?q=1", "https://example.com/robots.txt"),
        ("http://[::1]:8000", "http://[::1]:8000/robots.txt"),
    ],
)
def test_robots_url(origin: str, expected: str) -> None:
    assert robots_url(origin) == expected


def test_robots_url_rejects_non_origin() -> None:
    with pytest.raises(ValueError):
        robots_url("example.com")


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        ("trio-crawler/0.1.0 (+https://x)", "trio-crawler"),
        (DEFAULT_USER_AGENT, "trio-crawler"),
        ("  My_Bot-2 ", "My_Bot-"),
        ("Googlebot", "Googlebot"),
        ("Mozilla/5.0 (compatible; Foo)", "Mozilla"),
        ("2bot/1.0", ""),
    ],
)
def test_user_agent_token(user_agent: str, token: str) -> None:
    assert user_agent_token(user_agent) == token


# --- rules


def test_own_group_beats_star() -> None:
    policy = parse("User-agent: *\nDisallow: /\n\nUser-agent: trio-crawler\nDisallow: /private\n")
    assert policy.kind == "rules"
    assert policy.allowed(f"{BASE}/public", TOKEN)
    assert not policy.allowed(f"{BASE}/private/x", TOKEN)
    assert not policy.allowed(f"{BASE}/public", "otherbot")


def test_star_group_applies_without_own_group() -> None:
    policy = parse("User-agent: somebot\nDisallow: /\n\nUser-agent: *\nDisallow: /tmp/\n")
    assert policy.allowed(f"{BASE}/page", TOKEN)
    assert not policy.allowed(f"{BASE}/tmp/x", TOKEN)
    assert not policy.allowed(f"{BASE}/page", "somebot")


def test_group_match_is_case_insensitive() -> None:
    policy = parse("User-agent: TRIO-Crawler\nDisallow: /x\n")
    assert not policy.allowed(f"{BASE}/x", TOKEN)
    assert not policy.allowed(f"{BASE}/x", "Trio-Crawler")


def test_prefix_group_does_not_capture_longer_token() -> None:
    # RFC 9309 matches the product token exactly; protego alone would apply "trio" to us.
    policy = parse("User-agent: trio\nDisallow: /\n\nUser-agent: *\nDisallow: /star\n")
    assert policy.allowed(f"{BASE}/x", TOKEN)
    assert not policy.allowed(f"{BASE}/star", TOKEN)
    assert not policy.allowed(f"{BASE}/x", "trio")


def test_versioned_user_agent_line_is_cut_to_token() -> None:
    policy = parse("User-agent: trio-crawler/1.0\nDisallow: /mine\n\nUser-agent: *\nAllow: /\n")
    assert not policy.allowed(f"{BASE}/mine", TOKEN)


def test_group_with_several_agents() -> None:
    policy = parse("User-agent: a\nUser-agent: trio-crawler\nDisallow: /both\n")
    assert not policy.allowed(f"{BASE}/both", TOKEN)
    assert not policy.allowed(f"{BASE}/both", "a")
    assert policy.allowed(f"{BASE}/both", "b")


def test_longest_match_and_allow_overrides_disallow() -> None:
    policy = parse(
        "User-agent: *\n"
        "Disallow: /shop\n"
        "Allow: /shop/public\n"
        "Disallow: /shop/public/secret\n"
        "Allow: /same\n"
        "Disallow: /same\n"
    )
    assert not policy.allowed(f"{BASE}/shop/cart", TOKEN)
    assert policy.allowed(f"{BASE}/shop/public/item", TOKEN)
    assert not policy.allowed(f"{BASE}/shop/public/secret/1", TOKEN)
    # equal length: the least restrictive (Allow) wins
    assert policy.allowed(f"{BASE}/same", TOKEN)


def test_empty_disallow_allows_everything() -> None:
    policy = parse("User-agent: *\nDisallow:\n")
    assert policy.allowed(f"{BASE}/anything", TOKEN)


def test_wildcards() -> None:
    policy = parse("User-agent: *\nDisallow: /*.pdf$\nDisallow: /*/private/\nDisallow: /end$\n")
    assert not policy.allowed(f"{BASE}/docs/a.pdf", TOKEN)
    assert policy.allowed(f"{BASE}/docs/a.pdf?download=1", TOKEN)
    assert policy.allowed(f"{BASE}/docs/a.pdf.html", TOKEN)
    assert not policy.allowed(f"{BASE}/x/private/y", TOKEN)
    assert policy.allowed(f"{BASE}/x/public/y", TOKEN)
    assert not policy.allowed(f"{BASE}/end", TOKEN)
    assert policy.allowed(f"{BASE}/end/more", TOKEN)


def test_query_string_is_matched() -> None:
    policy = parse("User-agent: *\nDisallow: /search?q=\n")
    assert not policy.allowed(f"{BASE}/search?q=trio", TOKEN)
    assert policy.allowed(f"{BASE}/search", TOKEN)


@pytest.mark.parametrize(
    "url",
    [f"{BASE}/café/menu", f"{BASE}/caf%C3%A9/menu", f"{BASE}/caf%c3%a9/menu"],
)
@pytest.mark.parametrize("rule", ["/caf%C3%A9", "/café"])
def test_percent_encoded_paths(rule: str, url: str) -> None:
    policy = parse(f"User-agent: *\nDisallow: {rule}\n")
    assert not policy.allowed(url, TOKEN)
    assert policy.allowed(f"{BASE}/cafe/menu", TOKEN)


def test_encoded_slash_is_not_a_slash() -> None:
    policy = parse("User-agent: *\nDisallow: /a%2Fb\n")
    assert not policy.allowed(f"{BASE}/a%2Fb", TOKEN)
    assert policy.allowed(f"{BASE}/a/b", TOKEN)


def test_robots_txt_itself_is_always_allowed() -> None:
    policy = parse("User-agent: *\nDisallow: /\n")
    assert not policy.allowed(f"{BASE}/", TOKEN)
    assert policy.allowed(f"{BASE}/robots.txt", TOKEN)
    unreachable = RobotsPolicy.unreachable(now=0.0, error_ttl=10.0)
    assert unreachable.allowed(f"{BASE}/robots.txt", TOKEN)
    assert not unreachable.allowed(f"{BASE}/robots.txt.bak", TOKEN)
    assert not unreachable.allowed(f"{BASE}/x/robots.txt", TOKEN)


def test_comments_and_crlf() -> None:
    policy = parse("# hello\r\nUser-agent: * # everyone\r\nDisallow: /x # not x\r\n")
    assert not policy.allowed(f"{BASE}/x", TOKEN)
    assert policy.allowed(f"{BASE}/y", TOKEN)


def test_byte_order_mark_does_not_hide_first_line() -> None:
    policy = parse(b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n")
    assert not policy.allowed(f"{BASE}/x", TOKEN)


# --- crawl-delay and sitemaps


def test_crawl_delay_per_group() -> None:
    policy = parse(
        "User-agent: *\nCrawl-delay: 5\n\n"
        "User-agent: trio-crawler\nCrawl-delay: 0.5\nDisallow: /x\n\n"
        "User-agent: quiet\nDisallow: /y\n"
    )
    assert policy.crawl_delay(TOKEN) == 0.5
    assert policy.crawl_delay("otherbot") == 5.0
    # the agent's own group applies, even without a Crawl-delay of its own
    assert policy.crawl_delay("quiet") is None


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", ""])
def test_bad_crawl_delay_is_ignored(value: str) -> None:
    policy = parse(f"User-agent: *\nCrawl-delay: {value}\n")
    assert policy.crawl_delay(TOKEN) is None


def test_crawl_delay_absent() -> None:
    assert parse("User-agent: *\nDisallow: /x\n").crawl_delay(TOKEN) is None
    assert RobotsPolicy.allow_all().crawl_delay(TOKEN) is None
    assert RobotsPolicy.unreachable(now=0, error_ttl=1).crawl_delay(TOKEN) is None


def test_sitemaps_collected() -> None:
    policy = parse(
        "Sitemap: https://example.com/a.xml\n"
        "User-agent: *\nDisallow: /x\n"
        "Sitemap: https://example.com/b.xml\n"
        "sitemap: https://example.com/a.xml\n"
    )
    assert policy.sitemaps == ("https://example.com/a.xml", "https://example.com/b.xml")
    assert RobotsPolicy.allow_all().sitemaps == ()


# --- odd bodies


def test_empty_file_allows_everything() -> None:
    policy = parse(b"")
    assert policy.allowed(f"{BASE}/x", TOKEN)
    assert policy.sitemaps == ()
    assert policy.crawl_delay(TOKEN) is None


def test_rules_without_user_agent_are_ignored() -> None:
    assert parse("Disallow: /\n").allowed(f"{BASE}/x", TOKEN)


@pytest.mark.parametrize("seed", range(5))
def test_binary_garbage_never_raises(seed: int) -> None:
    body = random.Random(seed).randbytes(50_000)
    policy = parse(body)
    assert policy.kind in ("rules", "allow_all")
    assert policy.allowed(f"{BASE}/x", TOKEN)


def test_html_body_allows_everything() -> None:
    policy = parse("<!doctype html><html><head><title>Not found: oops</title></head></html>")
    assert policy.allowed(f"{BASE}/x", TOKEN)


def test_invalid_utf8_is_replaced() -> None:
    policy = parse(b"User-agent: *\nDisallow: /\xff\xfe\nDisallow: /x\n")
    assert not policy.allowed(f"{BASE}/x", TOKEN)


def test_huge_body_is_truncated() -> None:
    head = b"User-agent: *\nDisallow: /early\n"
    filler = b"# padding padding padding padding\n" * (ROBOTS_MAX_BYTES // 30)
    body = head + filler + b"Disallow: /late\n"
    assert len(body) > ROBOTS_MAX_BYTES
    policy = parse(body)
    assert not policy.allowed(f"{BASE}/early", TOKEN)
    assert policy.allowed(f"{BASE}/late", TOKEN)


def test_line_cut_by_the_cap_is_dropped() -> None:
    # Without care the cap would turn "Disallow: /private" into "Disallow: /".
    head = b"User-agent: *\nDisallow: /early\n"
    pad = b"#" * (ROBOTS_MAX_BYTES - len(head) - len(b"Disallow: /") - 1) + b"\n"
    body = head + pad + b"Disallow: /private\n"
    assert len(head + pad + b"Disallow: /") == ROBOTS_MAX_BYTES
    policy = parse(body)
    assert not policy.allowed(f"{BASE}/early", TOKEN)
    assert policy.allowed(f"{BASE}/", TOKEN)
    assert policy.allowed(f"{BASE}/public", TOKEN)


def test_body_exactly_at_cap_is_kept_whole() -> None:
    head = b"User-agent: *\n"
    tail = b"Disallow: /x"  # no final newline
    body = head + b"#" * (ROBOTS_MAX_BYTES - len(head) - len(tail) - 1) + b"\n" + tail
    assert len(body) == ROBOTS_MAX_BYTES
    assert not parse(body).allowed(f"{BASE}/x", TOKEN)


# --- statuses and expiry


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
def test_4xx_allows_everything(status: int) -> None:
    policy = RobotsPolicy.from_response(
        status, b"User-agent: *\nDisallow: /\n", now=100.0, error_ttl=600.0
    )
    assert policy.kind == "allow_all"
    assert policy.allowed(f"{BASE}/x", TOKEN)
    assert policy.expires == 100.0 + 24 * 3600


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_429_and_5xx_disallow_everything_for_a_while(status: int) -> None:
    policy = RobotsPolicy.from_response(status, b"", now=100.0, error_ttl=600.0)
    assert policy.kind == "disallow_all"
    assert not policy.allowed(f"{BASE}/x", TOKEN)
    assert policy.expires == 700.0
    assert not policy.is_expired(699.9)
    assert policy.is_expired(700.0)


@pytest.mark.parametrize("status", [100, 301, 304, 999])
def test_unexpected_status_is_unreachable(status: int) -> None:
    policy = RobotsPolicy.from_response(status, b"", now=0.0, error_ttl=60.0)
    assert policy.kind == "disallow_all"
    assert policy.expires == 60.0


def test_success_expires_after_ttl() -> None:
    policy = RobotsPolicy.from_response(200, b"", now=10.0, error_ttl=600.0, ttl=50.0)
    assert policy.expires == 60.0
    assert not policy.is_expired(59.0)
    assert policy.is_expired(60.0)


def test_unreachable_and_allow_all() -> None:
    down = RobotsPolicy.unreachable(now=5.0, error_ttl=600.0)
    assert (down.kind, down.expires) == ("disallow_all", 605.0)
    everyone = RobotsPolicy.allow_all()
    assert (everyone.kind, everyone.expires) == ("allow_all", None)
    assert everyone.allowed(f"{BASE}/anything", TOKEN)
    assert not everyone.is_expired(1e12)


def test_policy_is_immutable() -> None:
    policy = RobotsPolicy.allow_all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.kind = "disallow_all"  # type: ignore[misc]


# --- cache


def test_cache_get_put() -> None:
    cache = RobotsCache()
    assert cache.get("http://a", 0.0) is None
    policy = RobotsPolicy.allow_all()
    cache.put("http://a", policy)
    assert cache.get("http://a", 1e9) is policy
    assert len(cache) == 1


def test_cache_drops_expired_entries() -> None:
    cache = RobotsCache()
    cache.put("http://a", RobotsPolicy.unreachable(now=0.0, error_ttl=600.0))
    assert cache.get("http://a", 599.0) is not None
    assert cache.get("http://a", 600.0) is None
    assert len(cache) == 0
    # a fresh verdict replaces it
    fresh = parse("User-agent: *\nDisallow: /x\n", now=600.0)
    cache.put("http://a", fresh)
    assert cache.get("http://a", 601.0) is fresh


def test_cache_put_replaces() -> None:
    cache = RobotsCache()
    cache.put("http://a", RobotsPolicy.unreachable(now=0.0, error_ttl=600.0))
    cache.put("http://a", RobotsPolicy.allow_all())
    assert len(cache) == 1
    got = cache.get("http://a", 0.0)
    assert got is not None and got.kind == "allow_all"


def test_cache_lru_eviction() -> None:
    cache = RobotsCache(max_entries=2)
    a, b, c = (RobotsPolicy.allow_all() for _ in range(3))
    cache.put("http://a", a)
    cache.put("http://b", b)
    assert cache.get("http://a", 0.0) is a  # a is now the most recently used
    cache.put("http://c", c)
    assert len(cache) == 2
    assert cache.get("http://b", 0.0) is None
    assert cache.get("http://a", 0.0) is a
    assert cache.get("http://c", 0.0) is c


def test_cache_peek_neither_reorders_nor_returns_expired() -> None:
    cache = RobotsCache(max_entries=2)
    a, b, c = (RobotsPolicy.allow_all() for _ in range(3))
    cache.put("http://a", a)
    cache.put("http://b", b)
    assert cache.peek("http://a", 0.0) is a  # a look only: a stays the least recently used
    cache.put("http://c", c)
    assert cache.peek("http://a", 0.0) is None
    assert cache.peek("http://b", 0.0) is b
    cache.put("http://d", RobotsPolicy.unreachable(now=0.0, error_ttl=10.0))
    assert cache.peek("http://d", 9.0) is not None
    assert cache.peek("http://d", 10.0) is None


def test_cache_rejects_zero_size() -> None:
    with pytest.raises(ValueError):
        RobotsCache(max_entries=0)
