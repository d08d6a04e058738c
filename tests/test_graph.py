"""The link graph's pure parts: anchor text from extraction (asked for, or not), the
reference graph's bounds, directives as text."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from trio_crawler._extract import extract
from trio_crawler._graph import (
    ANCHOR_MAX,
    MemoryCrawlGraph,
    MetaRobotsPages,
    PageGraph,
    Referrers,
    directives_text,
)

PAGE = "http://a.test/dir/page"


def texts(html: str, **kw: bool) -> dict[str, str]:
    found = extract(LexborHTMLParser(html), PAGE, **kw)
    return {link.url: link.text for link in found.links}


def test_anchor_text_only_when_asked() -> None:
    html = '<a href="/x">Hello <b>bold</b>\n  world</a> <a href="y">why</a>'
    assert texts(html) == {"http://a.test/x": "", "http://a.test/dir/y": ""}
    assert texts(html, anchor_text=True) == {
        "http://a.test/x": "Hello bold world",
        "http://a.test/dir/y": "why",
    }


def test_anchor_text_falls_back_to_labels_and_images() -> None:
    html = (
        '<a href="/label" aria-label="Close"> </a>'
        '<a href="/title" title="The title"></a>'
        '<a href="/img"><img src="logo.png" alt="  Our\nlogo "></a>'
        '<a href="/none"><img src="x.png"></a>'
        '<map><area href="/area" alt="A region"></map>'
    )
    assert texts(html, anchor_text=True) == {
        "http://a.test/label": "Close",
        "http://a.test/title": "The title",
        "http://a.test/img": "Our logo",
        "http://a.test/none": "",
        "http://a.test/area": "A region",
    }


def test_anchor_text_of_the_first_occurrence_that_has_any() -> None:
    html = '<a href="/x"><img src="i.png"></a> <a href="/x">second</a> <a href="/x">third</a>'
    assert texts(html, anchor_text=True) == {"http://a.test/x": "second"}


def test_anchor_text_is_bounded() -> None:
    html = f'<a href="/long">{"word " * 1000}</a>'
    text = texts(html, anchor_text=True)["http://a.test/long"]
    assert len(text) == ANCHOR_MAX and text.startswith("word word")


def test_anchor_text_with_truncated_links() -> None:
    html = "".join(f'<a href="/{i}">t{i}</a>' for i in range(10))
    found = extract(LexborHTMLParser(html), PAGE, max_links=3, anchor_text=True)
    assert [(link.url, link.text) for link in found.links] == [
        ("http://a.test/0", "t0"),
        ("http://a.test/1", "t1"),
        ("http://a.test/2", "t2"),
    ]
    assert found.links_truncated


def test_memory_graph_keeps_the_first_referrers_and_counts_all() -> None:
    graph = MemoryCrawlGraph(keep=2, out_of_scope_kept=2, noindex_kept=1)
    for i in range(4):
        graph.add_page(
            PageGraph(
                f"http://a.test/{i}",
                links=(("http://a.test/t", f"to t {i}"),),
                out_of_scope=((f"http://x.test/{i}", i + 1),),
                noindex="noindex" if i else None,
            )
        )
    assert graph.referrers(["http://a.test/t", "http://a.test/other"]) == {
        "http://a.test/t": Referrers(
            (("http://a.test/0", "to t 0"), ("http://a.test/1", "to t 1")), 4
        )
    }
    oos = graph.out_of_scope(10)
    # the first two distinct URLs are counted one by one; the others in the total only
    assert oos.top == (("http://x.test/1", 2), ("http://x.test/0", 1))
    assert (oos.distinct, oos.total) == (2, 1 + 2 + 3 + 4)
    graph.add_out_of_scope("http://x.test/0", 5)  # a URL counted already goes on counting
    assert graph.out_of_scope(1).top == (("http://x.test/0", 6),)
    assert graph.meta_robots(10) == MetaRobotsPages((("http://a.test/1", "noindex"),), 3)


def test_directives_text() -> None:
    assert directives_text({"nofollow", "noindex", "noarchive"}) == "noindex, nofollow, noarchive"
    assert directives_text(frozenset({"noindex"})) == "noindex"
