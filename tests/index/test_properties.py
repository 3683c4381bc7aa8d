"""Properties over arbitrary Unicode, beyond the generated-text tests of test_chunker.py / test_repair.py.

Those tests draw text from curated pieces (CJK words, Latin, the usual punctuation and spaces), which
finds the logic bugs fast. Here the text is any Unicode a file or a JSON body can carry: rare white space
(U+2028, U+0085, U+000B, U+001C–U+001F, U+3000), zero-width and combining marks, emoji outside the BMP,
control characters. Checked:

- repair: no visible character lost or invented (a line-end hyphen may go; zero-width characters are
  removed on purpose), paragraphs trimmed, one line each, and a second repair changes nothing;
- documents: each paragraph's offsets slice the text to exactly that paragraph, nothing but white space
  between paragraphs;
- chunking: offsets slice the text, chunks in order, and (without overlap) every non-space character in
  exactly one chunk, the same chunks every time;
- uploads: any bytes under any supported name either load into such documents or raise LoadError (what
  the API answers as 422), never anything else;
- filter dates: any string is either a valid ISO day or a QueryError (400), never anything else.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter

from hypothesis import example, given, settings
from hypothesis import strategies as st

from index.chunker import ChunkerConfig, chunk_document
from index.documents import Document, LoadError
from index.loaders import load_bytes
from index.repair import repair_paragraphs
from index.text import INVISIBLE
from search.engine import QueryError
from search.filters import check_date

_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|\w+|[^\s\w]", re.UNICODE)

# White space str.strip() and re's \s agree on, including the rare kinds loaders meet in real files.
_SPACES = [" ", "\n", "\t", "\r", "\u3000", "\u00a0", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x85"]
_ODD = ["\u200b", "\u200d", "\ufeff", "\u0301", "e\u0301", "😀", "𠀀", "\U0001f1e8\U0001f1f3", "\x07", "\x00",
        "-", "—", "…", "。", "，", "“", "”", "（", "）", ".", "!", "?"]
_words = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "M")), max_size=12)
_unicode = st.lists(st.one_of(_words, st.sampled_from(_SPACES), st.sampled_from(_ODD)),
                    max_size=40).map("".join)


def count_tokens(texts: list[str]) -> list[int]:
    """Stand-in tokenizer: one token per CJK character, word or other non-space character."""
    return [len(_TOKEN.findall(text)) for text in texts]


def non_space(texts: list[str]) -> Counter[str]:
    """Visible characters: neither white space nor the invisible ones the repair drops on purpose
    (zero-width and control characters, `index.text.INVISIBLE`)."""
    return Counter(c for text in texts for c in text if not c.isspace() and not INVISIBLE.fullmatch(c))


# --- repair -----------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(_unicode, max_size=10))
@example(["第一段\u2028第二行", "\x85", "a-\u2029b"])
def test_repair_keeps_every_character_of_any_unicode(paragraphs: list[str]) -> None:
    repaired = repair_paragraphs(paragraphs)
    before, after = non_space(paragraphs), non_space(repaired)
    assert after - before == Counter(), "a character was invented"
    assert set((before - after).elements()) <= {"-"}, "a character other than a line-end hyphen was lost"
    for p in repaired:
        assert p and p == p.strip() and "\n" not in p, repr(p)


@settings(max_examples=200, deadline=None)
@given(st.lists(_unicode, max_size=10))
@example(["!0", "0…", "a㐀"])  # a continuation moved back over a finished paragraph (issue 16)
def test_repair_is_idempotent(paragraphs: list[str]) -> None:
    once = repair_paragraphs(paragraphs)
    assert repair_paragraphs(once) == once


# --- documents and chunks ---------------------------------------------------------------------------------
def assert_document(doc: Document) -> None:
    previous_end = 0
    for start, end in doc.paragraphs:
        assert 0 <= previous_end <= start < end <= len(doc.text)
        paragraph = doc.text[start:end]
        assert paragraph and paragraph == paragraph.strip()
        assert not doc.text[previous_end:start].strip(), "only white space between paragraphs"
        previous_end = end
    assert not doc.text[previous_end:].strip()


@settings(max_examples=200, deadline=None)
@given(st.lists(_unicode, max_size=8))
def test_document_offsets_slice_any_unicode(paragraphs: list[str]) -> None:
    doc = Document.from_paragraphs("p", paragraphs, title="t")
    assert_document(doc)
    assert non_space([doc.text]) - non_space(paragraphs) == Counter()


_configs = st.builds(
    lambda m, t, o: ChunkerConfig(max_tokens=m, target_tokens=t, overlap_sentences=o),
    st.integers(2, 60), st.integers(1, 60), st.sampled_from([0, 0, 1]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_unicode, min_size=1, max_size=6), _configs)
def test_chunks_slice_any_unicode(paragraphs: list[str], config: ChunkerConfig) -> None:
    doc = Document.from_paragraphs("c", paragraphs, title="t")
    chunks = chunk_document(doc, count_tokens, config)
    for ordinal, chunk in enumerate(chunks):
        assert chunk.ordinal == ordinal
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start and a.end < b.end
        if not config.overlap_sentences:
            assert a.end <= b.start
    if not config.overlap_sentences:
        assert non_space([c.text for c in chunks]) == non_space([doc.text]), "lost or duplicated"
    assert chunk_document(doc, count_tokens, config) == chunks, "the same text gives the same chunks"


# --- uploads ----------------------------------------------------------------------------------------------
def _office_file() -> bytes:
    """A small real .docx, whole, for the fuzzer to cut and corrupt."""
    import docx

    document = docx.Document()
    document.add_heading("宜宾大学城", level=1)
    document.add_paragraph("宜宾正举全市之力推进大学城建设。")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _damaged(whole: bytes) -> st.SearchStrategy[bytes]:
    """`whole` cut short, or with a run of its bytes overwritten."""
    cut = st.integers(0, len(whole)).map(lambda n: whole[:n])
    overwritten = st.tuples(st.integers(0, len(whole) - 1), st.binary(min_size=1, max_size=64)).map(
        lambda at: whole[: at[0]] + at[1] + whole[at[0] + len(at[1]) :]
    )
    return st.one_of(cut, overwritten)


# A PDF of one empty page, written by hand (no cross-reference table: PDFium rebuilds it).
_ONE_PAGE_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]"
                 b"/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
                 b"trailer<</Root 1 0 R>>\n%%EOF")
_names = st.sampled_from(["a.txt", "b.md", "c.html", "d.jsonl", "dir/../e.txt", "f.markdown", "g.htm",
                          "h.pdf", "i.docx"])
_bodies = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: b"%PDF-1.4\n" + b),
    _damaged(_ONE_PAGE_PDF),
    _damaged(_office_file()),
    _unicode.map(lambda t: t.encode("utf-8")),
    _unicode.map(lambda t: t.encode("gb18030", errors="replace")),
    st.lists(st.one_of(_unicode.map(lambda t: '{"text": ' + repr(t).replace("'", '"') + "}"),
                       _unicode), max_size=4).map(lambda lines: "\n".join(lines).encode("utf-8")),
)


@settings(max_examples=200, deadline=None)
@given(_names, _bodies)
@example("d.jsonl", b'{"text": "ok"}\n{"text": \n')
@example("c.html", b"<html><body><script>alert(1)</script><p>\xe6\xad\xa3\xe6\x96\x87</p></body></html>")
def test_any_upload_loads_or_is_refused_with_a_reason(name: str, data: bytes) -> None:
    try:
        docs = load_bytes(name, data)
    except LoadError as exc:
        assert str(exc), "the refusal says why"
        return
    assert docs
    for doc in docs:
        assert doc.doc_id and not doc.doc_id.startswith("/") and ".." not in doc.doc_id.split("/")
        assert doc.text.strip() and doc.path is None
        assert_document(doc)
        doc.text.encode("utf-8")  # storable: no lone surrogate made it through


# --- dates ------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=14), st.dates().map(dt.date.isoformat),
                 st.builds(lambda y, m, d: f"{y}-{m:02d}-{d:02d}", st.integers(0, 99999), st.integers(0, 13),
                           st.integers(0, 32))))
def test_any_filter_date_is_a_day_or_a_query_error(value: str) -> None:
    try:
        day = check_date(value, "date_from")
    except QueryError as exc:
        assert "date_from" in str(exc)
        return
    assert day is None or dt.date.fromisoformat(day)
