"""Pages to plain text: what is kept and what is dropped, on pages of the sources' own shape."""

from __future__ import annotations

import pytest

from app.sources.text import baike_page, wikipedia_text
from tests.fakesources import LI_BAI_BAIKE_HTML, SU_SHI_BAIKE_HTML, SU_SHI_WIKI_HTML

WIKI = wikipedia_text(SU_SHI_WIKI_HTML)
BAIKE = baike_page(SU_SHI_BAIKE_HTML.encode(), "https://baike.example/item/苏轼")


@pytest.mark.parametrize(
    "kept",
    [
        "字: 子瞻、和仲",  # infobox rows as label: value
        "出生: 1037年1月8日 北宋眉州眉山",  # <br> and links inside a cell
        "世称苏东坡，北宋眉州眉山人",  # paragraphs
        "\n生平\n嘉祐二年",  # headings on their own line, before their section
        "- 词开豪放一派",  # list items
    ],
)
def test_wikipedia_keeps(kept: str) -> None:
    assert kept in WIKI


@pytest.mark.parametrize(
    "dropped", ["[1]", "编辑", "宋史", "韩愈", "重定向", "赤壁赋（局部）", "font-style", "参考文献"]
)
def test_wikipedia_drops(dropped: str) -> None:
    # references, edit links, reference lists, navboxes, hatnotes, figures, styles, and the
    # heading of a section left empty
    assert dropped not in WIKI


def test_wikipedia_infobox_comes_first() -> None:
    assert WIKI.splitlines()[:2] == ["苏轼", "字: 子瞻、和仲"]


def test_baike_page() -> None:
    assert BAIKE.title == "苏轼"
    assert BAIKE.senses == []
    lines = BAIKE.text.splitlines()
    assert lines[0].startswith("苏轼（1037年1月8日－1101年8月24日），字子瞻")
    assert "别名: 苏东坡、苏仙" in lines and "出生日期: 1037年1月8日" in lines
    assert "人物生平" in lines and "元丰三年（1080年），因乌台诗案被贬为黄州团练副使。" in lines
    for dropped in ("[1]", "window.PAGE_DATA", "百度首页", "宋史", "Baidu"):
        assert dropped not in BAIKE.text


def test_baike_same_name_entries() -> None:
    page = baike_page(LI_BAI_BAIKE_HTML.encode(), "https://baike.example/item/李白")
    assert [(s.description, s.url) for s in page.senses] == [
        ("唐代诗人", None),
        ("中国足球运动员", "https://baike.example/baike/item/%E6%9D%8E%E7%99%BD/2043"),
        ("2012年张作骥执导电影", "https://baike.example/baike/item/%E6%9D%8E%E7%99%BD/2044"),
    ]
