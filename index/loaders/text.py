"""Plain text, sniffed: front matter makes it Markdown, block tags make it HTML."""

from __future__ import annotations

from index.loaders.base import ArticleLoader, ParsedBody
from index.loaders.html import looks_like_html, parse_html
from index.loaders.markdown import parse_markdown
from index.text import split_paragraphs


class TextLoader(ArticleLoader):
    """.txt files; saved pages are often Markdown or HTML under a .txt name, so the content decides."""

    extensions = (".txt",)

    def parse(self, body: str, *, front_matter: bool) -> ParsedBody:
        if looks_like_html(body):
            return parse_html(body)
        if front_matter:  # front matter is a Markdown convention (Hexo, Jekyll, Hugo exports)
            return parse_markdown(body)
        return ParsedBody(split_paragraphs(body))
