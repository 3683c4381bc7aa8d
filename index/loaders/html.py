"""HTML: paragraphs from block elements, without scripts, styles, comments or navigation."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

from bs4 import (
    BeautifulSoup,
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    PageElement,
    ProcessingInstruction,
    Tag,
)

from index.loaders.base import ArticleLoader, Metadata, ParsedBody, parse_date
from index.repair import collapse_whitespace

# Elements that end one paragraph and start another.
BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
        "html", "li", "main", "ol", "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead",
        "tr", "ul",
    }
)  # fmt: skip
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Never text of the article.
DROPPED = frozenset(
    {
        "script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object", "canvas",
        "nav", "button", "select",
    }
)  # fmt: skip
CELLS = frozenset({"td", "th"})
BOLD = frozenset({"strong", "b"})
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)

# A body that has these is HTML, whatever the file extension says.
_BLOCK_TAG = re.compile(r"<(?:p|div|br|h[1-6]|li|ul|ol|table|tr|section|article|blockquote)\b[^>]*>", re.I)

_META_FIELDS = {
    "author": "author",
    "article:author": "author",
    "og:site_name": "source",
    "source": "source",
    "publisher": "source",
    "article:published_time": "date",
    "pubdate": "date",
    "publishdate": "date",
    "date": "date",
    "dc.date": "date",
    "og:url": "url",
}


def looks_like_html(body: str) -> bool:
    """Markup rather than text: starts with a tag and has block tags, or has several block tags."""
    tags = _BLOCK_TAG.findall(body)
    if not tags:
        return False
    markdown_headings = re.search(r"^#{1,6}\s", body, re.M)
    return body.lstrip().startswith("<") or (len(tags) >= 3 and not markdown_headings)


def _all_bold(tag: Tag) -> bool:
    """Every piece of text in `tag` is inside <strong>/<b>: a paragraph used as a heading."""
    texts = [s for s in tag.find_all(string=True) if not isinstance(s, _SKIPPED_STRINGS) and s.strip()]
    return bool(texts) and all(any(p.name in BOLD for p in s.parents if p is not tag) for s in texts)


class _Collector:
    """Walks the tree and cuts its text into paragraphs at block boundaries."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.headings: set[int] = set()
        self.buffer: list[str] = []
        self.heading_depth = 0  # > 0 while inside a heading

    def flush(self) -> None:
        text = collapse_whitespace("".join(self.buffer))
        self.buffer.clear()
        if text:
            if self.heading_depth:
                self.headings.add(len(self.paragraphs))
            self.paragraphs.append(text)

    def walk(self, node: Tag) -> None:
        # An explicit stack, not recursion: a page nested thousands of elements deep (generated or hostile
        # markup) would pass Python's recursion limit. Each entry is an element's remaining children and,
        # for a block, whether it is a heading (None for inline elements).
        stack: list[tuple[Iterator[PageElement], int | None]] = [(iter(node.children), None)]
        while stack:
            children, block = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                if block is not None:
                    self.flush()
                    self.heading_depth -= block
                continue
            if isinstance(child, _SKIPPED_STRINGS):
                continue
            if isinstance(child, NavigableString):
                self.buffer.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if name in DROPPED:
                continue
            if name == "br":
                self.flush()
            elif name in BLOCKS:
                heading = int(name in HEADINGS or (name == "p" and _all_bold(child)))
                self.flush()
                self.heading_depth += heading
                stack.append((iter(child.children), heading))
            else:
                if name in CELLS and "".join(self.buffer).strip():
                    self.buffer.append(" | ")  # a row is one paragraph; cells stay apart, also in CJK
                stack.append((iter(child.children), None))


def _meta(soup: BeautifulSoup) -> Metadata:
    found: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        key = str(tag.get("name") or tag.get("property") or "").lower()
        content = str(tag.get("content") or "").strip()
        if key in _META_FIELDS and content:
            found.setdefault(_META_FIELDS[key], content)
    canonical = soup.find("link", rel="canonical")
    if isinstance(canonical, Tag) and canonical.get("href"):
        found.setdefault("url", str(canonical["href"]))
    try:
        day = parse_date(found.get("date"))
    except ValueError:
        day = None
    return Metadata(date=day, author=found.get("author"), source=found.get("source"), url=found.get("url"))


def parse_html(body: str) -> ParsedBody:
    """Paragraphs of an HTML page or fragment; title from <title>, else the first <h1>."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bs4 warns about inputs that look like file names or URLs
        soup = BeautifulSoup(body, "lxml")
    title = None
    for candidate in (soup.title, soup.find("h1")):
        if isinstance(candidate, Tag) and (text := collapse_whitespace(candidate.get_text(" "))):
            title = text
            break
    meta = _meta(soup)
    collector = _Collector()
    collector.walk(soup)
    collector.flush()
    return ParsedBody(collector.paragraphs, collector.headings, title, meta)


class HTMLLoader(ArticleLoader):
    """.html / .htm files."""

    extensions = (".html", ".htm")

    def parse(self, body: str, *, front_matter: bool) -> ParsedBody:
        return parse_html(body)
