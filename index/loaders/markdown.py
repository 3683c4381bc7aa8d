"""Markdown: paragraphs on blank lines, headings on their own, inline syntax stripped lightly.

This is not a Markdown renderer: it only removes the syntax that would otherwise end up in passages
(`#`, `**`, link targets, list markers), keeping the text a reader sees.
"""

from __future__ import annotations

import re

from index.loaders.base import ArticleLoader, ParsedBody
from index.loaders.html import looks_like_html, parse_html

_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_QUOTE = re.compile(r"^\s{0,3}>\s?")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")

_INLINE = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images: the alt text is rarely prose
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # [text](url)
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # [text][ref]
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),  # <https://...>
    (re.compile(r"`([^`]+)`"), r"\1"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    # *emphasis*: CJK text has no spaces, so only Latin letters and digits count as "inside a word"
    (re.compile(r"(?<![A-Za-z0-9*])\*(?=\S)(.+?)(?<=\S)\*(?![A-Za-z0-9*])"), r"\1"),
    # _emphasis_ only at word edges; \w covers CJK, so 多地布局_十四五_区域 keeps its underscores
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),
    (re.compile(r"~~(.+?)~~"), r"\1"),
    (re.compile(r"</?(?:span|em|strong|b|i|u|a|font|sup|sub|small|mark|code)\b[^>]*>", re.I), ""),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])"), r"\1"),  # backslash escapes
)


def strip_inline(text: str) -> str:
    """Text of a line of Markdown: emphasis, code and link syntax removed, link text kept."""
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text


def parse_markdown(body: str) -> ParsedBody:
    """Paragraphs of a Markdown body; the first heading is its title."""
    paragraphs: list[str] = []
    headings: set[int] = set()
    block: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if any(line.strip() for line in block):
            paragraphs.append("\n".join(block))
        block.clear()

    def heading(text: str) -> None:
        flush()
        if text := strip_inline(text).strip():
            headings.add(len(paragraphs))
            paragraphs.append(text)

    for line in body.split("\n"):
        if fence is not None:  # code is kept, as one paragraph, without interpretation
            if line.strip().startswith(fence):
                fence = None
                flush()
            else:
                block.append(line)
            continue
        if m := _FENCE.match(line):
            flush()
            fence = m.group(1)
            continue
        if not line.strip():
            flush()
        elif m := _ATX.match(line):
            heading(m.group(2))
        elif _SETEXT.match(line) and len(block) == 1:
            text = block.pop()
            heading(text)
        elif _RULE.match(line) or _TABLE_RULE.match(line):
            flush()
        elif m := _LIST_ITEM.match(line):
            flush()  # each item is a paragraph of its own
            block.append(strip_inline(line[m.end() :]))
        else:
            line = _QUOTE.sub("", line)
            if line.strip().startswith("|"):  # a table row: its cells, as one line
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                flush()
                block.append(" | ".join(strip_inline(c) for c in cells if c))
                flush()
            else:
                block.append(strip_inline(line))
    flush()
    title = paragraphs[min(headings)] if headings else None
    return ParsedBody(paragraphs, headings, title)


class MarkdownLoader(ArticleLoader):
    """.md / .markdown files; an HTML body (as exported by some CMSs) is read as HTML."""

    extensions = (".md", ".markdown")

    def parse(self, body: str, *, front_matter: bool) -> ParsedBody:
        return parse_html(body) if looks_like_html(body) else parse_markdown(body)
