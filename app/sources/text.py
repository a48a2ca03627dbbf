"""Pages to plain text (pure functions over HTML, parsed with selectolax's lexbor parser).

Run them in a worker thread: a large page takes milliseconds to parse. Each keeps what a reader
of the article sees as its content — the infobox as ``label: value`` lines, headings,
paragraphs, list items and table rows — and drops references, edit links, navigation boxes,
scripts and styles.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

_SPACE = re.compile(r"\s+")
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset({"p", "blockquote", "pre", "dd", "dt", "caption"})
_LISTS = frozenset({"ul", "ol"})

_WIKIPEDIA_NOISE = (
    "style, script, noscript, sup.reference, .mw-editsection, .reference, .reflist, "
    ".mw-references-wrap, ol.references, .navbox, .navbox-styles, .vertical-navbox, .metadata, "
    ".noprint, .hatnote, .mw-empty-elt, #toc, .toc, figure, .thumb, .gallery, .mw-cite-backlink, "
    ".sistersitebox, .ambox, .mbox-small, .catlinks"
)
_BAIKE_NOISE = (
    "style, script, noscript, sup, .sup-anchor, .lemma-album, .album-list, .edit-icon, "
    "[class*=editLemma], [class*=lemmaReference], .lemma-reference, .title-prefix"
)


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _text(node: LexborNode) -> str:
    return _clean(node.text(separator=""))


def _parse(html: bytes | str, noise: str) -> LexborHTMLParser:
    tree = LexborHTMLParser(html)
    for node in tree.css(noise):
        node.decompose()
    for br in tree.css("br"):
        br.replace_with(" ")
    return tree


def _table_lines(table: LexborNode) -> Iterator[str]:
    for row in table.css("tr"):
        cells = [_text(c) for c in row.iter() if c.tag in ("th", "td")]
        cells = [c for c in cells if c]
        if len(cells) == 2 and row.css_first("th") is not None:
            yield f"{cells[0]}: {cells[1]}"
        elif cells:
            yield " | ".join(cells)


def _blocks(node: LexborNode) -> Iterator[str]:
    """The readable lines under ``node`` in document order."""
    for child in node.iter():
        tag = child.tag or ""
        if tag in _HEADINGS:
            if heading := _text(child):
                yield f"\n{heading}"
        elif tag in _BLOCKS:
            if text := _text(child):
                yield text
        elif tag in _LISTS:
            for item in child.iter():
                if item.tag == "li" and (text := _text(item)):
                    yield f"- {text}"
        elif tag == "table":
            yield from _table_lines(child)
        elif tag == "dl":
            yield from _blocks(child)
        else:
            yield from _blocks(child)


def _joined(lines: Iterator[str]) -> str:
    """The lines as one text, without headings of sections left empty (references)."""
    kept: list[str] = []
    for line in lines:
        if line.startswith("\n") and kept and kept[-1].startswith("\n"):
            kept.pop()
        kept.append(line)
    if kept and kept[-1].startswith("\n"):
        kept.pop()
    return "\n".join(kept).strip()


def wikipedia_text(html: bytes | str) -> str:
    """The plain text of MediaWiki's ``action=parse`` HTML: the infobox first as
    ``label: value`` lines, then headings, paragraphs, lists and tables."""
    tree = _parse(html, _WIKIPEDIA_NOISE)
    root = tree.css_first(".mw-parser-output") or tree.body
    if root is None:
        return ""
    infobox: list[str] = []
    for box in root.css("table.infobox"):
        infobox.extend(_table_lines(box))
        box.decompose()
    return _joined(iter([*infobox, *_blocks(root)]))


@dataclass
class BaikeSense:
    """One entry of a Baike page's list of same-name entries."""

    description: str
    url: str | None
    """None for the page's own sense."""


@dataclass
class BaikePage:
    """What FastNPC reads from a Baidu Baike entry page."""

    title: str
    text: str
    senses: list[BaikeSense] = field(default_factory=list)


def baike_page(html: bytes | str, page_url: str) -> BaikePage:
    """A Baike entry page: its title, its text (summary, the basic-info box as ``label: value``
    lines, then headings and paragraphs) and its same-name entries (links made absolute).
    Reads the classic layout (``lemma-summary``, ``basic-info``, ``para``) and the current one
    (``lemmaSummary_…``, ``basicInfo_…``, ``para_…`` classes)."""
    tree = _parse(html, _BAIKE_NOISE)
    title_node = tree.css_first(".lemmaWgt-lemmaTitle-title h1, [class*=lemmaTitle] h1, h1")
    title = _text(title_node) if title_node is not None else ""
    senses = []
    items = tree.css(".polysemantList-wrapper .item") or tree.css("[class*=polysemantList] li")
    for item in items:
        link = item if item.tag == "a" else item.css_first("a")
        href = None if link is None else link.attributes.get("href")
        if description := _text(item):
            senses.append(BaikeSense(description, None if not href else urljoin(page_url, href)))
    lines: list[str] = []
    for summary in tree.css(".lemma-summary, [class*=lemmaSummary]")[:1]:
        lines.append(_text(summary))
        summary.decompose()
    for box in tree.css(".basic-info, [class*=basicInfo_]")[:1]:
        pairs = zip(box.css("dt"), box.css("dd"), strict=False)
        # labels are spaced out to a common width (`别　　名`)
        lines.extend(f"{_text(n).replace(' ', '')}: {_text(v)}" for n, v in pairs if _text(n))
        box.decompose()
    body = tree.css_first(".main-content, [class*=mainContent], .J-lemma-content")
    if body is not None:
        for node in body.css(".para-title, .para, [class*=paraTitle], [class*=para_]"):
            if text := _text(node):
                heading = "itle" in (node.attributes.get("class") or "")
                lines.append(f"\n{text}" if heading else text)
    return BaikePage(title=title, text=_joined(iter(_dedupe(lines))), senses=senses)


def _dedupe(lines: list[str]) -> Iterator[str]:
    """Drop a line repeating the one before (a block nested in a block the selectors match)."""
    previous = None
    for line in lines:
        if line and line.strip() != previous:
            yield line
        previous = line.strip()
