"""The benchmark's static site: deterministic pages, their links, and the set a crawl must find.

Layout (``n`` public pages, ids ``0 .. n-1``)::

    /                      page 0 (index.html)
    /sNNN/page-I.html      page I > 0, in section NNN = I // 250
    /private/p-J.html      disallowed by robots.txt; about 2% of public pages link into it
    /robots.txt            User-agent: * / Disallow: /private/

Every public page is reachable from ``/``: page I links to its children 4I+1 .. 4I+4 (a 4-ary
tree, depth about log4(n)), to its neighbours, and to random pages in the same and in other
sections. Each page is 10-20 KB of HTML with about 30 ``<a href>`` links, written in these forms:

* relative (``page-12.html``, ``./page-12.html``, ``../s003/page-800.html``), root-relative
  (``/s003/page-800.html``) and absolute (``http://127.0.0.1:PORT/s003/page-800.html``);
* fragment variants of all of these (``page-12.html#sec-2``) and of the page itself (``#top``);
* off-site links (``http://example.invalid/...``): out of scope, never fetched;
* non-http links (``mailto:``, ``javascript:``, ``tel:``): never fetched.

There are **no query-string variants**. nginx serves the same file whatever the query, so every
distinct query would be a distinct URL to a crawler, and the two crawlers dedupe queries
differently (trio-crawler sorts parameters and strips ``utm_*``; Scrapy keeps them): the page
set would depend on the crawler. Fragments and relative/absolute spellings are deduped by both,
so the set of pages a correct crawl fetches is exactly the public pages, each once; the index is
only ever linked as ``/`` (never ``/index.html``), and no URL redirects.

The absolute links carry the port, so a site is generated for one port and cached under
``site-N-pPORT``; a ``meta.json`` written last marks it complete.

The *scripted* variant (``generate(..., scripted=True)``, ``site-N-pPORT-js``, for
``scripts/bench --render``) is the same site with no ``<a href>`` in its HTML: each link is a
``<span data-link=K>`` and its URL the K-th of a JSON list in the page, and ``/links.js`` (a
small script every page loads) turns the spans into the links. A crawler that does not run
the script finds nothing but the start page (:func:`scripted_page`).
"""

from __future__ import annotations

import json
import os
import posixpath
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

SEED = 20_240_801
FORMAT_VERSION = 1
SECTION_SIZE = 250
TREE_ARITY = 4
PRIVATE_EVERY = 50  # one public page in 50 links into /private/
OFFSITE = ("http://example.invalid/", "https://www.example.invalid/about.html")
NON_HTTP = ("mailto:bench@example.invalid", "javascript:void(0)", "tel:+10000000000")

_SYLLABLES = [
    "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "pi", "da", "ge", "ho", "ju", "ze", "fa", "bu",
    "ri", "no",
]  # fmt: skip


def _vocabulary() -> list[str]:
    rng = random.Random(SEED)
    words = set()
    while len(words) < 400:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(1 + int(rng.random() * 4))))
    return sorted(words)


VOCAB = _vocabulary()


def page_path(i: int) -> str:
    """The URL path of public page ``i``."""
    return "/" if i == 0 else f"/s{i // SECTION_SIZE:03d}/page-{i}.html"


def private_path(j: int) -> str:
    return f"/private/p-{j}.html"


def _file_for(path: str) -> str:
    return "index.html" if path == "/" else path.lstrip("/")


def _href(rng: random.Random, src: str, dst: str, origin: str) -> str:
    """A spelling of a link from ``src`` to ``dst`` (both paths): relative, root-relative or
    absolute, sometimes with a fragment."""
    r = rng.random()
    src_dir = posixpath.dirname(src)
    if r < 0.35:
        rel = posixpath.relpath(dst, src_dir) if dst != "/" else posixpath.relpath("/", src_dir)
        if dst == "/":
            href = "./" if rel == "." else rel + "/"
        elif rng.random() < 0.2 and "/" not in rel:
            href = "./" + rel
        else:
            href = rel
    elif r < 0.65:
        href = dst
    else:
        href = origin + dst
    if rng.random() < 0.2:
        href += f"#sec-{int(rng.random() * 6)}"
    return href


def _links(i: int, n: int, n_private: int, rng: random.Random) -> tuple[list[int], list[str]]:
    """Public targets (ids) and private targets (paths) of public page ``i``."""
    targets = [TREE_ARITY * i + k for k in range(1, TREE_ARITY + 1) if TREE_ARITY * i + k < n]
    targets += [t for t in (i - 1, i + 1, 0) if 0 <= t < n and t != i]
    section = i // SECTION_SIZE
    lo, hi = section * SECTION_SIZE, min(n, (section + 1) * SECTION_SIZE)
    while len(targets) < 23:
        if rng.random() < 0.4:
            targets.append(lo + int(rng.random() * (hi - lo)))
        else:
            targets.append(int(rng.random() * n))
    private = [private_path((i // PRIVATE_EVERY) % n_private)] if i % PRIVATE_EVERY == 7 else []
    return targets, private


def _words(rng: random.Random, k: int) -> str:
    return " ".join(rng.choices(VOCAB, k=k))


def _render(title: str, src: str, hrefs: list[str], rng: random.Random, size: int) -> str:
    """An HTML page of about ``size`` bytes with the given links spread through its text."""
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>{title}</title>\n</head>\n<body>\n<a id="top"></a>\n'
        f"<header><h1>{title}</h1>\n<nav>"
    )
    parts = [head]
    nav, body_links = hrefs[:4], hrefs[4:]
    parts.extend(f'<a href="{h}">{_words(rng, 2)}</a> ' for h in nav)
    parts.append('</nav></header>\n<main id="main">\n')
    total = sum(map(len, parts))
    sec = 0
    pending = list(body_links)
    tail = '</main>\n<footer><a href="#top">top</a></footer>\n</body>\n</html>\n'
    while total < size - len(tail) or pending:
        if total >= size - len(tail) - 200:
            # Out of room: put the remaining links in one list.
            block = (
                "<ul>"
                + "".join(f'<li><a href="{h}">{_words(rng, 3)}</a></li>' for h in pending)
                + "</ul>\n"
            )
            pending = []
        else:
            k = 30 + int(rng.random() * 60)
            text = _words(rng, k)
            if pending and rng.random() < 0.6:
                h = pending.pop()
                cut = text.find(" ", len(text) // 2)
                text = f'{text[:cut]} <a href="{h}">{_words(rng, 2)}</a>{text[cut:]}'
            block = f"<p>{text}.</p>\n"
            if rng.random() < 0.15:
                block = f'<h2 id="sec-{sec}">{_words(rng, 3)}</h2>\n' + block
                sec += 1
        parts.append(block)
        total += len(block)
    parts.append(tail)
    return "".join(parts)


def public_page(i: int, n: int, n_private: int, origin: str) -> tuple[str, list[int]]:
    """Public page ``i`` of ``n``: its HTML and the ids of the public pages it links to."""
    rng = random.Random(SEED * 1_000_003 + i)
    src = page_path(i)
    targets, private = _links(i, n, n_private, rng)
    hrefs = [_href(rng, src, page_path(t), origin) for t in targets]
    hrefs += [_href(rng, src, p, origin) for p in private]
    hrefs.append("#top")
    hrefs.append(OFFSITE[i % 2])
    if i % 3 == 0:
        hrefs.append(f"http://example.invalid/page-{i}.html")
    hrefs += NON_HTTP
    # The first four links are the navigation: keep '/' among them, shuffle the rest.
    rest = hrefs[1:]
    rng.shuffle(rest)
    hrefs = [_href(rng, src, "/", origin), *rest[:3], *rest[3:]]
    size = 10_000 + int(rng.random() * 10_000)
    return _render(f"Page {i}", src, hrefs, rng, size), targets


def _private_page(j: int, n: int, n_private: int, origin: str) -> str:
    rng = random.Random(SEED * 7 + j)
    src = private_path(j)
    hrefs = [
        _href(rng, src, private_path(int(rng.random() * n_private)), origin) for _ in range(10)
    ]
    # Private pages also link to public pages: nothing must be reachable only through them,
    # and a crawl that ignores robots.txt finds them anyway (an extra page is a FAIL).
    hrefs += [_href(rng, src, page_path(int(rng.random() * n)), origin) for _ in range(10)]
    hrefs += [f"private-extra-{j}.html"]
    size = 10_000 + int(rng.random() * 10_000)
    return _render(f"Private {j}", src, hrefs, rng, size)


#: The script of the scripted variant: the page's spans become its links.
LINKS_JS = """document.addEventListener("DOMContentLoaded", () => {
  const hrefs = JSON.parse(document.getElementById("links").textContent);
  for (const span of document.querySelectorAll("span[data-link]")) {
    const a = document.createElement("a");
    a.href = hrefs[Number(span.dataset.link)];
    a.textContent = span.textContent;
    span.replaceWith(a);
  }
});
"""

_ANCHOR = re.compile(r'<a href="([^"]*)">(.*?)</a>')


def scripted_page(html: str) -> str:
    """``html`` with its links made by ``/links.js`` instead of written in the HTML."""
    hrefs: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        hrefs.append(match.group(1))
        return f'<span data-link="{len(hrefs) - 1}">{match.group(2)}</span>'

    body = _ANCHOR.sub(placeholder, html)
    data = json.dumps(hrefs).replace("</", "<\\/")
    tail = (
        f'<script type="application/json" id="links">{data}</script>\n'
        '<script src="/links.js"></script>\n</body>'
    )
    return body.replace("</body>", tail, 1)


def n_private_for(n: int) -> int:
    return max(5, n // PRIVATE_EVERY)


def _reachable(edges: dict[int, list[int]]) -> list[int]:
    seen = {0}
    stack = [0]
    while stack:
        for t in edges[stack.pop()]:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return sorted(seen)


def _pages(n: int, origin: str) -> Iterator[tuple[str, str, list[int] | None]]:
    n_private = n_private_for(n)
    for i in range(n):
        html, targets = public_page(i, n, n_private, origin)
        yield page_path(i), html, targets
    for j in range(n_private):
        yield private_path(j), _private_page(j, n, n_private, origin), None


def site_dir(root: Path, n: int, port: int, *, scripted: bool = False) -> Path:
    return root / f"site-{n}-p{port}{'-js' if scripted else ''}"


def is_generated(root: Path, n: int, port: int, *, scripted: bool = False) -> bool:
    meta_file = site_dir(root, n, port, scripted=scripted) / "meta.json"
    if not meta_file.exists():
        return False
    meta = json.loads(meta_file.read_text())
    return bool(meta.get("format") == FORMAT_VERSION and meta.get("pages") == n)


def generate(root: Path, n: int, port: int, *, scripted: bool = False) -> Path:
    """Generate the site of ``n`` pages for ``port`` under ``root`` once; return its directory.

    The directory holds ``www/`` (the document root), ``expected.txt`` (the paths a correct
    crawl fetches with status 200, one a line) and ``meta.json`` (written last). ``scripted``:
    the variant whose links a script makes (see the module docstring).
    """
    site = site_dir(root, n, port, scripted=scripted)
    if is_generated(root, n, port, scripted=scripted):
        return site
    tmp = root / f".{site.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    www = tmp / "www"
    www.mkdir(parents=True)
    origin = f"http://127.0.0.1:{port}"
    edges: dict[int, list[int]] = {}
    total_bytes = 0
    links = 0
    made_dirs: set[Path] = set()
    for index, (path, html, targets) in enumerate(_pages(n, origin)):
        file = www / _file_for(path)
        if file.parent not in made_dirs:
            file.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(file.parent)
        links += html.count("<a href=")
        data = (scripted_page(html) if scripted else html).encode("ascii")
        file.write_bytes(data)
        total_bytes += len(data)
        if targets is not None:
            edges[index] = targets
    (www / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    if scripted:
        (www / "links.js").write_text(LINKS_JS)
    reachable = _reachable(edges)
    (tmp / "expected.txt").write_text("".join(page_path(i) + "\n" for i in reachable))
    meta = {
        "format": FORMAT_VERSION,
        "pages": n,
        "port": port,
        "private_pages": n_private_for(n),
        "expected_pages": len(reachable),
        "bytes": total_bytes,
        "links": links,
        "seed": SEED,
        "scripted": scripted,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(site, ignore_errors=True)
    tmp.rename(site)
    return site


def expected_paths(site: Path) -> set[str]:
    return set((site / "expected.txt").read_text().split())
