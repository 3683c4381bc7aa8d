"""Plain text, sniffed: front matter makes it Markdown, block tags make it HTML."""

from __future__ import annotations

import re

from index.loaders.base import ArticleLoader, ParsedBody
from index.loaders.html import looks_like_html, parse_html
from index.loaders.markdown import parse_markdown

_BLANK_LINE = re.compile(r"\n[ \t\u3000\u00a0]*\n")


def text_paragraphs(body: str) -> list[str]:
    """Paragraphs of plain text: blocks between blank lines, or lines if there is no blank line.

    Text without blank lines usually has one paragraph per line; wrapped lines of one paragraph are
    joined again by the repair, which sees that a line stops mid-sentence.
    """
    body = body.strip("\n")
    blocks = _BLANK_LINE.split(body) if _BLANK_LINE.search(body) else body.split("\n")
    return [block for block in blocks if block.strip()]


class TextLoader(ArticleLoader):
    """.txt files; saved pages are often Markdown or HTML under a .txt name, so the content decides."""

    extensions = (".txt",)

    def parse(self, body: str, *, front_matter: bool) -> ParsedBody:
        if looks_like_html(body):
            return parse_html(body)
        if front_matter:  # front matter is a Markdown convention (Hexo, Jekyll, Hugo exports)
            return parse_markdown(body)
        return ParsedBody(text_paragraphs(body))
