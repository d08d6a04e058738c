"""Tests of the URL module: canonical form, fingerprints, scope rules, trap guards. No sockets."""

from __future__ import annotations

import ast
import contextlib
import random
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from trio_crawler import _urlparse, _urls
from trio_crawler._exceptions import SettingsError
from trio_crawler._settings import DEFAULT_STRIP_PARAMS, Settings
from trio_crawler._urls import (
    DropReason,
    QueryVariantGuard,
    UrlRules,
    canonicalize,
    fingerprint,
    normalize,
    origin,
    registrable_domain,
    request_parts,
    resolve,
)

UNPARSABLE = [
    "http://[::1",  # unterminated IPv6 literal
    "http://[::1]x/",  # junk after it
    "http://[nonsense]/",
    "http://h:99999/",  # port out of range
    "http://h:65536/",
    "http://h:8o/",
    "http://h:-1/",
    "http://",  # empty host
    "http:",
    "http://user@/path",
    "http://exa mple.com/",  # whitespace in host
    "http://exa\x00mple.com/",  # control characters in host
    "http://exa\x7fmple.com/",
    "http://bü cher.example/",
    "http://256.1.1.1/",  # not an IPv4 address
    "http://1.2.3.08/",  # 08 is not octal
    "http://a.09/",  # a host ending in a number is an IPv4 address
    "http://a.0x/",
    "http://a\u2100b/",  # UTS 46 maps the character to "a/c": '/' in a host
    "http://ex<ample.com/",
    "http://%zz.com/",
    "relative/path",
    "//host/scheme-relative",
    "",
]


def rules(seeds: tuple[str, ...] = ("http://example.com/",), **changes: Any) -> UrlRules:
    return UrlRules(Settings().replace(**changes), list(seeds))


# --------------------------------------------------------------------------- canonicalize


def test_fragment_dropped() -> None:
    assert canonicalize("http://example.com/a#section") == "http://example.com/a"
    assert canonicalize("http://example.com/a?x=1#frag?y=2") == "http://example.com/a?x=1"
    assert canonicalize("http://example.com/#") == "http://example.com/"


def test_scheme_and_host_lower_cased_path_kept() -> None:
    assert canonicalize("HTTP://WWW.Example.COM/Path/File.HTML") == (
        "http://www.example.com/Path/File.HTML"
    )
    assert canonicalize("hTTpS://Example.com") == "https://example.com/"


def test_idna_host() -> None:
    assert canonicalize("http://BÜCHER.example/") == "http://xn--bcher-kva.example/"
    assert canonicalize("http://bücher.example/") == "http://xn--bcher-kva.example/"
    assert canonicalize("http://xn--bcher-kva.example/") == "http://xn--bcher-kva.example/"
    assert canonicalize("http://%62%C3%BCcher.example/") == "http://xn--bcher-kva.example/"


def test_default_ports_removed_others_kept() -> None:
    assert canonicalize("http://example.com:80/") == "http://example.com/"
    assert canonicalize("https://example.com:443/") == "https://example.com/"
    assert canonicalize("http://example.com:443/") == "http://example.com:443/"
    assert canonicalize("https://example.com:80/") == "https://example.com:80/"
    assert canonicalize("http://example.com:8080/") == "http://example.com:8080/"
    assert canonicalize("http://example.com:08080/") == "http://example.com:8080/"
    assert canonicalize("http://example.com:/") == "http://example.com/"  # empty port


def test_percent_encoding_normalised() -> None:
    assert canonicalize("http://h/%7euser") == "http://h/~user"
    assert canonicalize("http://h/%7Euser") == "http://h/~user"
    assert canonicalize("http://h/a%2fb") == "http://h/a%2Fb"  # reserved: stays escaped
    assert canonicalize("http://h/a%2Fb") == "http://h/a%2Fb"
    assert canonicalize("http://h/a b") == "http://h/a%20b"
    assert canonicalize("http://h/%41%62%2d%5F%2e") == "http://h/Ab-_."
    assert canonicalize("http://h/caf%c3%a9") == "http://h/caf%C3%A9"
    assert canonicalize("http://h/café") == "http://h/caf%C3%A9"
    # what the URL Standard sends as it is stays: a lone '%', '|' in a path
    assert canonicalize("http://h/100%") == "http://h/100%"
    assert canonicalize("http://h/%zz") == "http://h/%zz"
    assert canonicalize("http://h/a<b>|c^{}") == "http://h/a%3Cb%3E|c%5E%7B%7D"
    assert canonicalize("http://h/?q=a b&r=%3d%7e") == "http://h/?q=a%20b&r=%3D~"
    assert canonicalize("http://h/?q=a+b") == "http://h/?q=a+b"  # '+' is not a space here
    assert canonicalize("http://h/?u=http://x/?y") == "http://h/?u=http://x/?y"
    assert canonicalize("http://h/p%3Fq") == "http://h/p%3Fq"  # an escaped '?' is path


def test_equivalent_spellings_meet() -> None:
    variants = [
        "HTTP://Example.COM:80/%7Ea/./b/../c?b=2&a=1#x",
        "http://example.com/~a/c?a=1&b=2",
        "http://example.com/%7ea/c?&a=1&&b=2&",
        "  http://example.com/~a/c?b=2&a=1&utm_source=x  ",
    ]
    forms = {canonicalize(v, strip_params=["utm_*"]) for v in variants}
    assert forms == {"http://example.com/~a/c?a=1&b=2"}


def test_empty_query_removed() -> None:
    assert canonicalize("http://example.com/?") == "http://example.com/"
    assert canonicalize("http://example.com/a?#f") == "http://example.com/a"
    assert canonicalize("http://example.com/a?&&") == "http://example.com/a"


def test_query_sorted_stably_by_name() -> None:
    assert canonicalize("http://h/?b=2&a=1&c=3") == "http://h/?a=1&b=2&c=3"
    # repeated names keep their relative order (the order of values can matter)
    assert canonicalize("http://h/?b=1&a=2&b=0&a=1") == "http://h/?a=2&a=1&b=1&b=0"
    assert canonicalize("http://h/?b=2&a=1", sort_query=False) == "http://h/?b=2&a=1"
    assert canonicalize("http://h/?&b=2&&a=1&", sort_query=False) == "http://h/?b=2&a=1"
    assert canonicalize("http://h/?flag&a=1") == "http://h/?a=1&flag"


def test_strip_params() -> None:
    url = "http://h/p?utm_source=x&id=7&utm_medium=y&gclid=z&gclidx=1&fbclid&utm_=1"
    assert canonicalize(url, strip_params=DEFAULT_STRIP_PARAMS) == "http://h/p?gclidx=1&id=7"
    assert canonicalize("http://h/p?utm_source=x", strip_params=["utm_*"]) == "http://h/p"
    assert canonicalize("http://h/?utm_a=1", strip_params=[]) == "http://h/?utm_a=1"
    # exact names only match whole names, and the name only (not values)
    assert canonicalize("http://h/?ref=gclid&gclid_x=1", strip_params=["gclid"]) == (
        "http://h/?gclid_x=1&ref=gclid"
    )
    # other globs work like fnmatch on the name
    assert canonicalize("http://h/?sid=1&session_id=2&x=3", strip_params=["*id"]) == (
        "http://h/?x=3"
    )
    assert canonicalize("http://h/?a=1", strip_params="a") == "http://h/"  # one name
    # names are compared after escape normalisation
    assert canonicalize("http://h/?%75tm_source=1&a=1", strip_params=["utm_*"]) == "http://h/?a=1"


def test_dot_segments_removed() -> None:
    assert canonicalize("http://h/a/../b") == "http://h/b"
    assert canonicalize("http://h/a/./b/.") == "http://h/a/b/"
    assert canonicalize("http://h/a/b/..") == "http://h/a/"
    assert canonicalize("http://h/../../x") == "http://h/x"
    assert canonicalize("http://h/a/%2E%2E/b") == "http://h/b"
    assert canonicalize("http://h/a/.hidden/..x") == "http://h/a/.hidden/..x"


def test_double_slashes_preserved() -> None:
    assert canonicalize("http://h/a//b") == "http://h/a//b"
    assert canonicalize("http://h//") == "http://h//"
    assert canonicalize("http://h/a//../b") == "http://h/a/b"


def test_empty_path_becomes_slash() -> None:
    assert canonicalize("http://example.com") == "http://example.com/"
    assert canonicalize("http://example.com?a=1") == "http://example.com/?a=1"
    assert canonicalize("http://example.com#top") == "http://example.com/"


def test_hosts() -> None:
    assert canonicalize("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert canonicalize("http://[0:0::1]/") == "http://[::1]/"
    assert canonicalize("http://[2001:DB8::A]/") == "http://[2001:db8::a]/"
    assert canonicalize("http://127.0.0.1:80/") == "http://127.0.0.1/"
    # a trailing dot is another host to a browser (and another Host header): kept
    assert canonicalize("http://example.com./") == "http://example.com./"
    assert canonicalize("http://under_score.example.com/") == "http://under_score.example.com/"
    # user info is never sent (credentials come from the settings): not in the canonical form
    assert canonicalize("http://User:P%61ss@Example.com/") == "http://example.com/"


@pytest.mark.parametrize("url", UNPARSABLE)
def test_unparsable_raises(url: str) -> None:
    with pytest.raises(ValueError):
        canonicalize(url)
    with pytest.raises(ValueError):
        origin(url)


def test_control_characters() -> None:
    # outside the host they are escaped; at the ends they are stripped (as browsers do)
    assert canonicalize("http://h/a\x01b") == "http://h/a%01b"
    assert canonicalize("http://h/a\nb") == "http://h/ab"  # tabs and newlines: removed
    assert canonicalize("\t http://h/a \r\n") == "http://h/a"
    assert canonicalize("http://h/\ud800") == "http://h/%EF%BF%BD"  # lone surrogate: U+FFFD
    for url in ("http://h\x01/", "http://h\u2028x/", "http://h\u00a0x/"):
        with pytest.raises(ValueError):
            canonicalize(url)


def test_other_schemes_do_not_raise() -> None:
    assert canonicalize("MAILTO:Someone@Example.com#x") == "mailto:Someone@Example.com"
    assert canonicalize("file:///etc/passwd") == "file:///etc/passwd"
    assert canonicalize("ftp://Host:21/a") == "ftp://host/a"
    assert canonicalize("javascript:alert(1)") == "javascript:alert(1)"


def test_canonicalize_is_idempotent() -> None:
    urls = [
        "HTTP://Example.COM:80/%7Ea/./b/../c?b=2&a=1#x",
        "http://h/caf%c3%a9/a b/%2f?q=%e2%82%ac&z",
        "http://BÜCHER.example:8080//x/..?",
        "https://[::FFFF:1.2.3.4]/",
        "http://h/100%/%zz",
    ]
    for url in urls:
        once = canonicalize(url)
        assert canonicalize(once) == once


def test_fast_path_agrees_with_the_parser() -> None:
    """A URL the fast path splits is one ada leaves as it is (its fragment apart)."""
    rng = random.Random(20240601)
    hosts = ["a.com", "A.Com", "x-1.org", "1.2.3.4", ".a", "a.", "a..b", "h", "Ü.de", "a_b.c"]
    hosts += ["01.2.3.4", "1.2.3", "0x7f.1", "2130706433", "a.1", "a.0x1", "a.0xg", "xn--a.b"]
    hosts += ["-a-.b", "1a.b2", "a.b.c.d.e", "1.2.3.256", "0.0.0.0"]
    ports = ["", ":80", ":443", ":8080", ":0", ":99999", ":", ":065535", ":65535", ":1"]
    pieces = ["%2e", "%2E", "%7e", "%41", "%c3%a9", "%C3%A9", "%2F", "%", "%g1", "/./", "/../"]
    pieces += ["//", "?", "#", "&", "=", "utm_a=1", ".", "..", "a", "Z", "~", "'", " ", "é"]
    pieces += ["\x00", "\\", "|", "^", "[", "]", "{", "`", '"', "<", "\t", "@", ":", ";", "!"]
    plain = [p for p in pieces if p.isascii() and p.isprintable() and p not in "\\|^[]{}`\"<'"]
    checked = 0
    for i in range(60_000):
        atoms = plain if i % 2 else pieces
        tail = "".join(rng.choice(atoms) for _ in range(rng.randrange(12)))
        url = f"{rng.choice(['http', 'HTTPS', 'https'])}://{rng.choice(hosts)}"
        url += f"{rng.choice(ports)}{rng.choice(['/', ''])}{tail}"
        fast = _urlparse.parse_plain(url)
        if fast is None:
            continue
        checked += 1
        assert fast == _urlparse.split(_urlparse.ada_parse(url).partition("#")[0]), url
        assert fast.url == _urlparse.ada_parse(url).partition("#")[0], url
    assert checked > 1_200


def test_long_url_is_linear() -> None:
    for url in (
        "http://example.com/" + "a/" * 5_000,
        "http://example.com/" + "%7e%zz" * 2_000,
        "http://example.com/?" + "a=1&" * 2_500,
        "http://" + "a" * 10_000 + ".com/",
        "http://example.com/" + "é" * 10_000,
        "http://" + "a" * 10_000 + "%/",  # fails the fast path late
        "http://[" + ":" * 10_000,
    ):
        start = time.perf_counter()
        for _ in range(10):
            with contextlib.suppress(ValueError):
                canonicalize(url, strip_params=DEFAULT_STRIP_PARAMS)
            rules(max_url_length=100_000).check(url)
        assert time.perf_counter() - start < 1.0, url[:40]


def test_what_rfc_3986_refused_and_browsers_read() -> None:
    """The URL Standard reads these, so a browser fetches them, and so does the crawl."""
    assert canonicalize("http:///nohost") == "http://nohost/"  # slashes after http: ignored
    assert canonicalize("http:nohost") == "http://nohost/"
    assert canonicalize("http://exa\tmple.com/") == "http://example.com/"  # tab removed
    assert canonicalize("http://exa\nmple.com/") == "http://example.com/"
    assert canonicalize("http://a..b/") == "http://a..b/"  # empty labels: a name all the same
    assert canonicalize("http://./") == "http://./"
    assert canonicalize("http://0x7f.1/") == "http://127.0.0.1/"
    assert canonicalize("http://h\\a\\b") == "http://h/a/b"
    for url in ("http:///nohost", "http://a..b/", "http://0x7f.1/"):
        assert rules(scope="any").check(url) is None, url


def test_port_zero_is_refused() -> None:
    """Port 0 parses, but it is a bad port (Fetch) and no connection reaches it."""
    assert canonicalize("http://h:0/") == "http://h:0/"
    assert rules(scope="any").check("http://h:0/") is DropReason.UNPARSABLE
    assert rules(scope="any").check("http://h:00/x") is DropReason.UNPARSABLE
    with pytest.raises(ValueError, match="port 0"):
        request_parts("http://h:0/")


def test_normalize_and_resolve() -> None:
    assert normalize("HTTP://Example.COM:80/a/./b/../c?q#f") == "http://example.com/a/c?q"
    assert normalize("http://example.com/p?") == "http://example.com/p?"  # empty query kept
    assert normalize("mailto:Someone@Example.com#x") == "mailto:Someone@Example.com"
    base = "https://h.example/dir/page?x#y"
    assert resolve("../up", base) == "https://h.example/up"
    assert resolve("?q", base) == "https://h.example/dir/page?q"
    assert resolve("#f", base) == "https://h.example/dir/page?x"
    assert resolve("https:rel", base) == "https://h.example/dir/rel"
    assert resolve("//other.example", base) == "https://other.example/"
    assert resolve("mailto:x", base) == "mailto:x"
    for url in ("relative", "", "http://[::1", "http://h:65536/"):
        with pytest.raises(ValueError):
            normalize(url)
    for href in ("http://[::1", "http://a b/", "http://h:x/"):
        with pytest.raises(ValueError):
            resolve(href, base)
    with pytest.raises(ValueError):
        resolve("x", "not a base")


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("http://example.com", ("http", "example.com", None, b"/", b"example.com")),
        ("HTTPS://Example.com:443/a?b#c", ("https", "example.com", None, b"/a?b", b"example.com")),
        ("http://example.com:8080/p?", ("http", "example.com", 8080, b"/p?", b"example.com:8080")),
        ("http://[0::1]:8080/x", ("http", "::1", 8080, b"/x", b"[::1]:8080")),
        ("https://[::1]/", ("https", "::1", None, b"/", b"[::1]")),
        ("http://u:p@h/x", ("http", "h", None, b"/x", b"h")),  # user info: never sent
        (
            "http://b\u00fccher.example/\u00e4",
            ("http", "xn--bcher-kva.example", None, b"/%C3%A4", b"xn--bcher-kva.example"),
        ),
        ("http://h/a b|c'd?e f'g", ("http", "h", None, b"/a%20b|c'd?e%20f%27g", b"h")),
        ("http://2130706433:81/", ("http", "127.0.0.1", 81, b"/", b"127.0.0.1:81")),
    ],
)
def test_request_parts(url: str, parts: tuple[str, str, int | None, bytes, bytes]) -> None:
    got = request_parts(url)
    assert (got.scheme, got.host, got.port, got.target, got.host_header) == parts
    assert got.url == normalize(url)
    assert request_parts(got.url) == got


@pytest.mark.parametrize("url", ["ftp://h/", "mailto:a@b", "http://", "/relative", "http://[::1"])
def test_request_parts_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        request_parts(url)


def test_the_c_api_and_the_public_api_agree() -> None:
    """ada_parse calls ada's C functions directly (cheaper); _ada_public is ada's own wrapper."""
    rng = random.Random(3)
    atoms = ["http://", "https:", "//", "/", "..", ".", "?", "#", "%2e", "%", "a", "B", "\\"]
    atoms += ["\x00", "\t", " ", "\u00e9", "\ud800", "\uff21", "[::1]", ":80", "@", "0x7f.1"]
    bases = ["https://h/a/b", "http://u@[::1]:8/x?y", "mailto:x", "not a base"]
    for _ in range(3_000):
        text = "".join(rng.choice(atoms) for _ in range(rng.randrange(8)))
        for base in (None, *bases):
            try:
                direct: str | None = _urlparse._ada_direct(text, base)
            except ValueError:
                direct = None
            try:
                public: str | None = _urlparse._ada_public(text, base)
            except ValueError:
                public = None
            assert direct == public, (text, base)


# --------------------------------------------------------------------------- origin, fingerprint


def test_origin() -> None:
    assert origin("http://Example.com/a?b#c") == "http://example.com:80"
    assert origin("HTTPS://example.com") == "https://example.com:443"
    assert origin("http://example.com:8080/") == "http://example.com:8080"
    assert origin("https://example.com:443/") == "https://example.com:443"
    assert origin("http://BÜCHER.example/") == "http://xn--bcher-kva.example:80"
    assert origin("http://[::1]:8080/") == "http://[::1]:8080"
    assert origin("https://[::1]/") == "https://[::1]:443"
    assert origin("http://user:pw@h/") == "http://h:80"
    for url in ("mailto:a@b.c", "foo://h/", "data:,x"):
        with pytest.raises(ValueError):
            origin(url)


def test_rules_origin() -> None:
    r = rules()
    for url in ("http://Example.com/a", "https://[::1]/", "http://BÜCHER.example:8080/"):
        assert r.origin(url) == origin(url)
    for url in ("mailto:a@b.c", "http://[::1"):
        with pytest.raises(ValueError):
            r.origin(url)


def test_fingerprint() -> None:
    value = fingerprint("http://example.com/")
    assert value == 18096097815684820230  # stable across runs and machines: it is stored
    assert 0 <= fingerprint("") < 2**64
    assert fingerprint("http://example.com/a") != fingerprint("http://example.com/b")


def test_fingerprint_same_for_equivalent_urls() -> None:
    r = rules()
    same = ["http://Example.com:80/a/../b?y=2&x=1&utm_source=s#f", "http://example.com/b?x=1&y=2"]
    assert len({r.fingerprint(u) for u in same}) == 1
    assert r.fingerprint(same[0]) == fingerprint(r.canonical(same[0]))
    different = [
        "http://example.com/b",
        "https://example.com/b",
        "http://example.com:8080/b",
        "http://example.com/B",
        "http://example.com/b/",
        "http://example.com/b?x=1",
        "http://example.com/b?x=2",
        "http://example.com/b?x=1&x=2",
        "http://example.com/b?x=2&x=1",
        "http://example.com/b%2Fc",
        "http://example.com/b/c",
        "http://www.example.com/b",
    ]
    assert len({r.fingerprint(u) for u in different}) == len(different)
    with pytest.raises(ValueError):
        r.fingerprint("http://[::1")


def test_rules_canonical_uses_settings() -> None:
    url = "http://example.com/?b=1&a=2&utm_x=3&keep=4"
    assert rules().canonical(url) == "http://example.com/?a=2&b=1&keep=4"
    assert rules(sort_query=False).canonical(url) == "http://example.com/?b=1&a=2&keep=4"
    assert rules(strip_params=("keep",)).canonical(url) == ("http://example.com/?a=2&b=1&utm_x=3")


def test_rules_cache_is_bounded() -> None:
    r = UrlRules(Settings(), ["http://example.com/"], cache_size=8)
    for i in range(100):
        assert r.fingerprint(f"http://example.com/{i}") == fingerprint(f"http://example.com/{i}")
        assert r.check(f"http://example.com/{i}") is None
    assert r._cached.cache_info().currsize == 8
    assert r._check_cached.cache_info().currsize == 8


# --------------------------------------------------------------------------- check


@pytest.mark.parametrize(
    "url",
    [
        "mailto:someone@example.com",
        "javascript:void(0)",
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "tel:+123456",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "ws://example.com/",
        "  mailto:x@example.com",
    ],
)
def test_bad_scheme(url: str) -> None:
    assert rules().check(url) is DropReason.BAD_SCHEME
    assert not rules().in_scope(url)


def test_too_long() -> None:
    r = rules(max_url_length=50)
    assert r.check("http://example.com/" + "a" * 31) is None  # exactly 50
    assert r.check("http://example.com/" + "a" * 32) is DropReason.TOO_LONG
    assert rules().check("http://example.com/" + "a" * 3000) is DropReason.TOO_LONG
    # order: the scheme is judged first, the length before the syntax
    assert r.check("mailto:" + "a" * 100) is DropReason.BAD_SCHEME
    assert r.check("http://[::1" + "a" * 100) is DropReason.TOO_LONG


def test_ten_thousand_char_url_is_fast() -> None:
    url = "http://example.com/" + "abc/" * 2_500
    r = rules()
    start = time.perf_counter()
    for i in range(1_000):
        assert r.check(url + str(i)) is DropReason.TOO_LONG
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("url", [u for u in UNPARSABLE if u.startswith("http")])
def test_unparsable_check(url: str) -> None:
    assert rules().check(url) is DropReason.UNPARSABLE
    assert not rules().in_scope(url)


def test_relative_url_is_unparsable() -> None:
    for url in ("relative/path", "/abs/path", "//example.com/x", "", "?q=1", "#frag"):
        assert rules().check(url) is DropReason.UNPARSABLE


def test_scope_host_same_origin() -> None:
    r = rules(("http://Example.com/start",))
    assert r.check("http://example.com/other") is None
    assert r.check("HTTP://EXAMPLE.COM:80/x") is None
    assert r.check("http://www.example.com/") is DropReason.OUT_OF_SCOPE
    assert r.check("http://sub.example.com/") is DropReason.OUT_OF_SCOPE
    assert r.check("https://example.com/") is DropReason.OUT_OF_SCOPE  # another scheme
    assert r.check("http://other.org/") is DropReason.OUT_OF_SCOPE


def test_scope_host_ports() -> None:
    r = rules(("http://127.0.0.1:8000/",))
    assert r.check("http://127.0.0.1:8000/a") is None
    assert r.check("http://127.0.0.1:8001/a") is DropReason.OUT_OF_SCOPE
    assert r.check("http://127.0.0.1/a") is DropReason.OUT_OF_SCOPE
    assert r.check("http://localhost:8000/a") is DropReason.OUT_OF_SCOPE
    r = rules(("https://example.com/",))
    assert r.check("https://example.com:443/a") is None
    assert r.check("https://example.com:8443/a") is DropReason.OUT_OF_SCOPE
    assert rules(("http://[::1]:9000/",)).check("http://[0::1]:9000/x") is None


def test_scope_host_allowed_domains() -> None:
    r = rules(allowed_domains=("cdn.example.org", "*.Partner.NET", ".bücher.example"))
    assert r.check("https://cdn.example.org:8443/x") is None  # any scheme and port
    assert r.check("http://img.cdn.example.org/x") is None  # subdomain
    assert r.check("http://example.org/x") is DropReason.OUT_OF_SCOPE  # parent: no
    assert r.check("http://xcdn.example.org/x") is DropReason.OUT_OF_SCOPE  # not a label match
    assert r.check("http://partner.net/") is None
    assert r.check("http://a.b.partner.net/") is None
    assert r.check("http://shop.xn--bcher-kva.example/") is None


def test_scope_domain() -> None:
    r = rules(("https://www.example.co.uk/",), scope="domain")
    assert r.check("https://www.example.co.uk/x") is None
    assert r.check("http://blog.example.co.uk:8080/x") is None
    assert r.check("https://example.co.uk/") is None
    assert r.check("https://other.co.uk/") is DropReason.OUT_OF_SCOPE
    assert r.check("https://example.com/") is DropReason.OUT_OF_SCOPE
    # private suffixes count: two github.io sites are two sites
    r = rules(("https://alice.github.io/",), scope="domain")
    assert r.check("https://docs.alice.github.io/") is None
    assert r.check("https://bob.github.io/") is DropReason.OUT_OF_SCOPE
    # allowed_domains widen the domain scope too
    r = rules(("https://example.com/",), scope="domain", allowed_domains=("example.net",))
    assert r.check("http://a.example.net/") is None


def test_scope_domain_ip_and_localhost() -> None:
    r = rules(("http://127.0.0.1:8000/", "http://localhost:9000/"), scope="domain")
    assert r.check("http://127.0.0.1:1234/") is None  # domain scope ignores the port
    assert r.check("http://127.0.0.2/") is DropReason.OUT_OF_SCOPE
    assert r.check("http://localhost/") is None
    assert r.check("http://[::1]/") is DropReason.OUT_OF_SCOPE


def test_registrable_domain() -> None:
    assert registrable_domain("www.example.co.uk") == "example.co.uk"
    assert registrable_domain("a.b.example.com") == "example.com"
    assert registrable_domain("alice.github.io") == "alice.github.io"
    assert registrable_domain("co.uk") == "co.uk"
    assert registrable_domain("localhost") == "localhost"
    assert registrable_domain("127.0.0.1") == "127.0.0.1"
    assert registrable_domain("[::1]") == "[::1]"
    assert registrable_domain("intranet") == "intranet"
    assert registrable_domain("a.b.corp.internal") == "corp.internal"  # no known suffix
    assert registrable_domain("www.xn--bcher-kva.de") == "xn--bcher-kva.de"


def test_public_suffix_list_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the URL module must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(_urls, "_extractor", None)  # build a new extractor now
    registrable_domain.cache_clear()
    try:
        assert registrable_domain("www.example.com.au") == "example.com.au"
    finally:
        registrable_domain.cache_clear()


def test_scope_any() -> None:
    r = rules(scope="any")
    assert r.check("https://anything.example.org:1234/x") is None
    assert r.check("http://10.0.0.1/") is None
    assert r.check("mailto:x@y.z") is DropReason.BAD_SCHEME


def test_denied_domains_always_win() -> None:
    denied = ("ads.example.com", "tracker.net")
    r = rules(denied_domains=denied)
    assert r.check("http://example.com/x") is None
    r = rules(("http://ads.example.com/",), denied_domains=denied)
    assert r.check("http://ads.example.com/x") is DropReason.DENIED_DOMAIN
    assert not r.in_scope("http://ads.example.com/x")
    r = rules(scope="any", denied_domains=denied)
    assert r.check("http://x.ads.example.com/") is DropReason.DENIED_DOMAIN
    assert r.check("http://TRACKER.net:8080/") is DropReason.DENIED_DOMAIN
    assert r.check("http://nottracker.net/") is None
    r = rules(allowed_domains=("example.com",), denied_domains=denied)
    assert r.check("http://www.example.com/") is None
    assert r.check("http://ads.example.com/") is DropReason.DENIED_DOMAIN
    assert not r.in_scope("http://ads.example.com/")


def test_include_and_exclude_patterns() -> None:
    r = rules(include_patterns=(r"/blog/", r"/news/"), exclude_patterns=(r"\.pdf$", r"[?&]print="))
    assert r.check("http://example.com/blog/post") is None
    assert r.check("http://example.com/news/1") is None
    assert r.check("http://example.com/about") is DropReason.EXCLUDED
    assert r.check("http://example.com/blog/a.pdf") is DropReason.EXCLUDED
    assert r.check("http://example.com/blog/a?print=1") is DropReason.EXCLUDED
    # patterns see the URL that is sent (normalised), not the canonical form
    assert rules(exclude_patterns=("BLOG",)).check("http://example.com/BLOG") is (
        DropReason.EXCLUDED
    )
    assert rules(exclude_patterns=(r"\?b=1&a=2",)).check("http://example.com/?b=1&a=2") is (
        DropReason.EXCLUDED
    )
    assert rules(exclude_patterns=("^http://example.com/c$",)).check(
        "HTTP://EXAMPLE.com:80/a/../c#x"
    ) is (DropReason.EXCLUDED)
    # the fragment is never sent
    assert rules(exclude_patterns=("#top",)).check("http://example.com/#top") is None
    # scope comes first
    assert r.check("http://other.org/blog/") is DropReason.OUT_OF_SCOPE


def test_trap_repeated_segment() -> None:
    r = rules()  # max_repeated_segments=3
    assert r.check("http://example.com/a/b/a/b/a/b") is None  # three times: fine
    assert r.check("http://example.com/a/b/a/b/a/b/a/b") is DropReason.TRAP_REPEATED_SEGMENT
    assert r.check("http://example.com/x/x/x/x") is DropReason.TRAP_REPEATED_SEGMENT
    assert r.check("http://example.com/x/x/x/") is None
    assert r.check("http://example.com/x/y/x/z/x/w/x") is DropReason.TRAP_REPEATED_SEGMENT
    assert r.check("http://example.com/2020/01/01/01/post") is None
    assert r.check("http://example.com/a////////b") is None  # empty segments are not counted
    # the canonical path is judged: dot segments and escapes are resolved first
    assert r.check("http://example.com/x/x/x/y/../x") is DropReason.TRAP_REPEATED_SEGMENT
    assert r.check("http://example.com/x/x/x/%78") is DropReason.TRAP_REPEATED_SEGMENT
    assert rules(max_repeated_segments=1).check("http://example.com/a/a") is (
        DropReason.TRAP_REPEATED_SEGMENT
    )


def test_trap_deep_path() -> None:
    r = rules(max_path_depth=5)
    assert r.check("http://example.com/1/2/3/4/5") is None
    assert r.check("http://example.com/1/2/3/4/5/") is None  # a trailing slash adds no depth
    assert r.check("http://example.com/1/2/3/4/5/6") is DropReason.TRAP_DEEP_PATH
    assert r.check("http://example.com/1/2/3/4/5/6?q") is DropReason.TRAP_DEEP_PATH
    deep = "http://example.com/" + "/".join(f"s{i}" for i in range(33))
    assert rules().check(deep) is DropReason.TRAP_DEEP_PATH
    # repeated segments are reported before depth
    assert r.check("http://example.com/a/a/a/a/a/a/a") is DropReason.TRAP_REPEATED_SEGMENT


def test_add_seed_widens_scope() -> None:
    r = rules(("http://example.com/",))
    assert r.check("http://other.org:8080/x") is DropReason.OUT_OF_SCOPE  # (now cached)
    assert not r.in_scope("http://other.org:8080/x")
    r.add_seed("http://Other.org:8080/start")
    assert r.check("http://other.org:8080/x") is None
    assert r.in_scope("http://other.org:8080/x")
    assert r.seed_origins() == frozenset({"http://example.com:80", "http://other.org:8080"})


def test_a_seed_added_after_the_domain_scope_was_asked_widens_it() -> None:
    """The seeds' registrable domains are found when the scope first asks (the public suffix
    list costs 45 ms to load); a seed added later is counted from then on."""
    r = rules(("https://www.example.co.uk/",), scope="domain")
    assert r.in_scope("https://shop.example.co.uk/")
    assert not r.in_scope("https://blog.other.org/")
    r.add_seed("https://other.org/")
    assert r.in_scope("https://blog.other.org/")


def test_seed_origins() -> None:
    r = rules(("https://BÜCHER.example/a", "http://[::1]:8000/", "https://bücher.example/b"))
    assert r.seed_origins() == frozenset({"https://xn--bcher-kva.example:443", "http://[::1]:8000"})
    assert rules(()).seed_origins() == frozenset()


@pytest.mark.parametrize("seed", ["mailto:x@y.z", "http://[::1", "example.com", "ftp://h/"])
def test_bad_seed(seed: str) -> None:
    with pytest.raises(SettingsError):
        rules((seed,))


def test_bad_domain_setting() -> None:
    with pytest.raises(SettingsError):
        rules(allowed_domains=("exa mple.com",))


def test_no_seed_no_scope() -> None:
    r = rules(())
    assert r.check("http://example.com/") is DropReason.OUT_OF_SCOPE
    assert rules((), scope="any").check("http://example.com/") is None


def test_in_scope() -> None:
    r = rules(("http://example.com/",))
    assert r.in_scope("http://example.com/a")
    assert r.in_scope("http://example.com/a/a/a/a/a")  # traps are not scope
    assert not r.in_scope("http://example.org/")
    assert not r.in_scope("http://example.com:81/")
    assert not r.in_scope("javascript:x")
    assert not r.in_scope("not a url")


def test_check_then_fingerprint_parse_once_and_agree() -> None:
    r = rules()
    url = "http://example.com/A/./b?z=1&a=2#f"
    assert r.check(url) is None
    assert r.fingerprint(url) == fingerprint("http://example.com/A/b?a=2&z=1")
    assert r.canonical("http://example.com/x") == "http://example.com/x"  # memo not reused
    assert r.check("http://other.org/") is DropReason.OUT_OF_SCOPE
    assert r.canonical(url) == "http://example.com/A/b?a=2&z=1"


def test_drop_reason_values() -> None:
    assert {r.value for r in DropReason} == {
        "bad_scheme",
        "too_long",
        "unparsable",
        "out_of_scope",
        "denied_domain",
        "excluded",
        "trap_repeated_segment",
        "trap_deep_path",
        "trap_query_variants",
        "too_deep",
    }
    assert f"{DropReason.TOO_DEEP}" == "too_deep"


# --------------------------------------------------------------------------- query variants


def test_query_variant_guard_limit() -> None:
    guard = QueryVariantGuard(limit=3)
    assert all(guard.admit(f"http://h/cal?day={i}") for i in range(3))
    assert not guard.admit("http://h/cal?day=3")
    assert guard.admit("http://h/cal?day=1")  # seen before
    assert guard.admit("http://h/cal")  # no query
    assert guard.admit("http://h/cal?")  # empty query
    assert guard.admit("http://h/cal#x?y")  # '?' in the fragment only
    assert guard.admit("http://h/other?day=9")  # another path
    assert guard.admit("http://h:8080/cal?day=9")  # another origin
    assert guard.admit("https://h/cal?day=9")
    assert guard.admit("http://H:80/cal?day=2#frag")  # same origin, path and query
    assert guard.admit("http://h/cal?day=2&&")  # same parameters
    guard = QueryVariantGuard(limit=1)
    assert guard.admit("http://h/?a=1&b=2")
    assert guard.admit("http://h/?b=2&a=1")  # reordered: the same query
    assert not guard.admit("http://h/?a=1&b=2&utm_source=x")  # raw URL: another query


def test_query_variant_guard_unparsable() -> None:
    assert not QueryVariantGuard(limit=3).admit("http://[::1?x=1")


def test_query_variant_guard_bounded_paths() -> None:
    guard = QueryVariantGuard(limit=2, max_paths=10)
    for i in range(100):
        assert guard.admit(f"http://h/p{i}?a=1")
        assert len(guard) <= 10
    assert guard.admit("http://h/p99?a=2")
    assert not guard.admit("http://h/p99?a=3")  # recent: remembered
    assert guard.admit("http://h/p0?a=2")  # forgotten: starts again
    # the least recently used path goes first
    guard = QueryVariantGuard(limit=2, max_paths=2)
    assert guard.admit("http://h/a?1") and guard.admit("http://h/a?2")
    assert guard.admit("http://h/b?1")
    assert not guard.admit("http://h/a?3")  # touches /a
    assert guard.admit("http://h/c?1")  # evicts /b, not /a
    assert not guard.admit("http://h/a?4")


def test_query_variant_guard_bounded_entries() -> None:
    guard = QueryVariantGuard(limit=5, max_entries=12)
    for path in range(10):
        for q in range(5):
            guard.admit(f"http://h/{path}?q={q}")
    assert guard._entries <= 12
    assert sum(len(s) for s in guard._seen.values()) == guard._entries
    assert not guard.admit("http://h/9?q=99")  # the newest path is still full


def test_query_variant_guard_arguments() -> None:
    with pytest.raises(ValueError):
        QueryVariantGuard(limit=0)
    with pytest.raises(ValueError):
        QueryVariantGuard(limit=5, max_paths=0)


# --------------------------------------------------------------------------- module hygiene


def test_module_is_import_light() -> None:
    tree = ast.parse(Path(_urls.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "httpx", "selectolax", "w3lib"}


def test_public_names() -> None:
    assert set(_urls.__all__) == {
        "DEFAULT_PORTS",
        "DropReason",
        "QueryVariantGuard",
        "RequestParts",
        "UrlRules",
        "canonicalize",
        "fingerprint",
        "normalize",
        "origin",
        "registrable_domain",
        "request_parts",
        "resolve",
    }
