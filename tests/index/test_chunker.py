"""Chunker: budgets, boundaries, headings, and the offset invariants on seeds and generated text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.chunker import ChunkerConfig, chunk_document
from index.documents import Chunk, Document
from index.loaders import load_documents

DATA = Path(__file__).resolve().parents[2] / "data"
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+|[^\sA-Za-z0-9\u3400-\u9fff\uf900-\ufaff]")


def count_tokens(texts: list[str]) -> list[int]:
    """Stand-in for the model tokenizer: one token per CJK character, Latin word or punctuation mark."""
    return [len(_TOKEN.findall(text)) for text in texts]


def seeds() -> list[Document]:
    return [doc for _, doc in load_documents([DATA])][:2]


def assert_invariants(doc: Document, chunks: list[Chunk], config: ChunkerConfig) -> None:
    """Offsets slice the text, chunks are trimmed and in order; without overlap they partition the text."""
    for ordinal, chunk in enumerate(chunks):
        assert chunk.ordinal == ordinal
        assert chunk.doc_id == doc.doc_id
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        assert count_tokens([chunk.text])[0] <= config.max_tokens
        assert 0 <= chunk.paragraph < max(1, len(doc.paragraphs))
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        assert previous.start < chunk.start and previous.end < chunk.end
        if not config.overlap_sentences:
            assert previous.end <= chunk.start
    if not config.overlap_sentences:
        covered = "".join(chunk.text for chunk in chunks)
        assert re.sub(r"\s", "", covered) == re.sub(r"\s", "", doc.text)


def document(paragraphs: list[str], doc_id: str = "t") -> Document:
    return Document.from_paragraphs(doc_id, paragraphs, repair=False, title="t")


# --- seeds --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [256, 128, 40, 12])
def test_seed_invariants(max_tokens: int) -> None:
    config = ChunkerConfig(max_tokens=max_tokens, target_tokens=max_tokens // 2)
    for doc in seeds():
        chunks = chunk_document(doc, count_tokens, config)
        assert len(chunks) > 1
        assert_invariants(doc, chunks, config)


def test_seed_headings_start_chunks() -> None:
    markdown_seed, xinhua_seed = seeds()
    chunks = chunk_document(markdown_seed, count_tokens)
    for heading in [
        "争创区域中心\n\n十余省市细则落地\n\n",
        "科技创新共同体\n\n蓄势崛起\n\n",
        "创新型产业集群\n\n加快打造\n\n",
    ]:
        assert any(c.text.startswith(heading) for c in chunks)
    chunks = chunk_document(xinhua_seed, count_tokens)
    for heading in ["A 区域协同，科创中心多点开花\n\n", "B 高新园区成区域发展“领头雁”\n\n", "相关链接：\n\n"]:
        assert any(c.text.startswith(heading) for c in chunks)
    # no chunk ends with a heading it took from the next section
    for c in chunks[:-1]:
        assert not c.text.endswith(("A 区域协同，科创中心多点开花", "C 创新型产业集群加快布局", "相关链接："))


def test_seed_paragraph_index() -> None:
    doc = seeds()[1]
    for chunk in chunk_document(doc, count_tokens):
        start, end = doc.paragraphs[chunk.paragraph]
        assert start <= chunk.start < end + 2


# --- splitting and merging ------------------------------------------------------------------------


def test_long_paragraph_splits_at_sentence_ends() -> None:
    sentences = [f"第{i}句话讲的是区域创新中心的建设情况。" for i in range(12)]
    doc = document(["".join(sentences)])
    config = ChunkerConfig(max_tokens=60, target_tokens=30)
    chunks = chunk_document(doc, count_tokens, config)
    assert len(chunks) > 2
    assert all(c.text.endswith("。") for c in chunks)
    assert_invariants(doc, chunks, config)
    sizes = count_tokens([c.text for c in chunks])
    assert max(sizes) - min(sizes) <= 20  # pieces are balanced, no scrap at the end


def test_sentence_ends_include_closing_quotes() -> None:
    doc = document(["“第一句说完了。”第二句也说完了！" * 4])
    chunks = chunk_document(doc, count_tokens, ChunkerConfig(max_tokens=20, target_tokens=10))
    assert all(c.text.endswith(("。”", "！")) for c in chunks)


def test_long_sentence_splits_at_commas_then_characters() -> None:
    doc = document(["，".join(["各地加快建设区域科技创新中心"] * 10) + "。"])
    config = ChunkerConfig(max_tokens=35, target_tokens=20)
    chunks = chunk_document(doc, count_tokens, config)
    assert all(c.text.endswith(("，", "。")) for c in chunks)
    assert_invariants(doc, chunks, config)
    doc = document(["区" * 100])
    config = ChunkerConfig(max_tokens=30, target_tokens=10)
    chunks = chunk_document(doc, count_tokens, config)
    assert len(chunks) == 4
    assert_invariants(doc, chunks, config)


def test_long_english_sentence_splits_at_spaces() -> None:
    doc = document([" ".join(["word"] * 50) + "."])
    config = ChunkerConfig(max_tokens=16, target_tokens=8)
    chunks = chunk_document(doc, count_tokens, config)
    assert all(re.fullmatch(r"[a-z .]+", c.text) and not c.text.startswith(" ") for c in chunks)
    assert all("wor d" not in c.text for c in chunks)
    assert_invariants(doc, chunks, config)


def test_short_paragraphs_merge_up_to_target() -> None:
    doc = document([f"第{i}段很短。" for i in range(10)])
    config = ChunkerConfig(max_tokens=100, target_tokens=20)
    chunks = chunk_document(doc, count_tokens, config)
    assert [c.text.count("段") for c in chunks] == [3, 3, 3, 1]
    assert all(count_tokens([c.text])[0] <= 20 for c in chunks)
    assert [c.paragraph for c in chunks] == [0, 3, 6, 9]


def test_heading_goes_with_the_following_paragraph() -> None:
    body = "正文第一句话写得比较长一些。" * 3
    doc = document(["前面的段落。", "小标题", body, "另一个小标题", "短的正文。"])
    config = ChunkerConfig(max_tokens=60, target_tokens=10)
    chunks = chunk_document(doc, count_tokens, config)
    assert [c.text for c in chunks] == ["前面的段落。", f"小标题\n\n{body}", "另一个小标题\n\n短的正文。"]


def test_heading_takes_first_sentences_when_paragraph_fills_the_budget() -> None:
    body = "这一句话写得不长也不短。" * 4  # 48 tokens: fits alone, but not with the heading
    doc = document(["小标题", body])
    config = ChunkerConfig(max_tokens=50, target_tokens=20)
    chunks = chunk_document(doc, count_tokens, config)
    assert chunks[0].text.startswith("小标题\n\n这一句话")
    assert_invariants(doc, chunks, config)


def test_overlap_repeats_previous_sentences() -> None:
    doc = document(["".join(f"第{i}句。" for i in range(20))])  # 80 tokens: 4 chunks of 20, room for 4 more
    config = ChunkerConfig(max_tokens=25, target_tokens=10, overlap_sentences=1)
    chunks = chunk_document(doc, count_tokens, config)
    assert_invariants(doc, chunks, config)
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        assert chunk.start < previous.end  # starts inside the previous chunk
        assert previous.text.endswith(doc.text[chunk.start : previous.end])


def test_empty_document_and_text_outside_paragraphs() -> None:
    assert chunk_document(Document("e", "  \n ", [], "t"), count_tokens) == []
    doc = Document("d", "第一段。\n\n游离的文字。\n\n第二段。", [(0, 4)], "t")
    chunks = chunk_document(doc, count_tokens, ChunkerConfig(max_tokens=5, target_tokens=5))
    assert_invariants(doc, chunks, ChunkerConfig(max_tokens=5, target_tokens=5))


def test_counts_are_batched() -> None:
    calls: list[int] = []

    def counting(texts: list[str]) -> list[int]:
        calls.append(len(texts))
        return count_tokens(texts)

    doc = seeds()[1]
    chunk_document(doc, counting)
    assert calls[0] == len(doc.paragraphs)
    assert len(calls) < len(doc.paragraphs) // 2


def test_subadditive_counts_are_checked() -> None:
    """A tokenizer whose count of a whole exceeds the sum of its parts still gets chunks within budget."""

    def seams(texts: list[str]) -> list[int]:
        return [
            n + text.count("\n\n") * 3 + text.count("。")
            for n, text in zip(count_tokens(texts), texts, strict=True)
        ]

    doc = document([f"第{i}段很短的话。" for i in range(12)])
    config = ChunkerConfig(max_tokens=24, target_tokens=24)
    chunks = chunk_document(doc, seams, config)
    assert all(n <= 24 for n in seams([c.text for c in chunks]))
    assert re.sub(r"\s", "", "".join(c.text for c in chunks)) == re.sub(r"\s", "", doc.text)


# --- generated text ----------------------------------------------------------------------------------

# Pieces of text drawn by index: cheap to generate (hypothesis' own text strategies dominate the run time
# otherwise), yet every mix of CJK, Latin, digits, punctuation, spaces and line breaks comes up.
_ATOMS = [
    "中国", "经济", "长三角", "区域创新", "高地", "加快崛起", "研", "发", "新型", "智能", "区" * 25,
    "the", "rules", "Data", "information", "2021", "GDP", "x", "1,000", "3.5", "a1b2c3d4e5f6g7h8",
    "。", "！", "？", "；", "，", "、", ".", "!", "?", ",", "”", "）", "“", "…", "：", "——",
    " ", "  ", "\n", "\u3000", ". ",
]  # fmt: skip
_paragraph = st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=60).map("".join)
_blank = st.sampled_from(["\n\n", "\n \n", "\n\n\n", "\n"])


@st.composite
def _raw_documents(draw: st.DrawFn) -> Document:
    """Text with arbitrary paragraph offsets: the chunker must not trust them to be tidy."""
    parts = draw(st.lists(st.tuples(_paragraph, _blank), min_size=1, max_size=8))
    text, offsets = "", []
    for paragraph, blank in parts:
        offsets.append((len(text), len(text) + len(paragraph)))
        text += paragraph + blank
    keep = draw(st.lists(st.booleans(), min_size=len(offsets), max_size=len(offsets)))
    return Document("gen", text, [o for o, k in zip(offsets, keep, strict=True) if k], "t")


_configs = st.builds(
    lambda m, t, o: ChunkerConfig(max_tokens=m, target_tokens=t, overlap_sentences=o),
    st.integers(3, 80),
    st.integers(1, 80),
    st.sampled_from([0, 0, 1, 2]),
)


@settings(max_examples=300, deadline=None)
@given(_raw_documents(), _configs)
def test_generated_text_invariants(doc: Document, config: ChunkerConfig) -> None:
    chunks = chunk_document(doc, count_tokens, config)
    assert_invariants(doc, chunks, config)


@settings(max_examples=100, deadline=None)
@given(st.lists(_paragraph, min_size=1, max_size=8), _configs)
def test_loaded_text_invariants(paragraphs: list[str], config: ChunkerConfig) -> None:
    """The same through `Document.from_paragraphs`, with the repair, as loaders build documents."""
    doc = Document.from_paragraphs("gen", paragraphs, title="t")
    chunks = chunk_document(doc, count_tokens, config)
    assert_invariants(doc, chunks, config)


def test_one_huge_line_is_counted_in_bounded_batches_with_progress() -> None:
    """A file of one 2-million-character line used to go to the tokenizer whole (gigabytes at 50 MB)."""
    sentence = "长三角地区研发投入强度持续提升，区域协同创新格局加快形成。"
    doc = Document.from_paragraphs("one-line.txt", [sentence * (2_000_000 // len(sentence))], repair=False)
    largest = 0

    def counting(texts: list[str]) -> list[int]:
        nonlocal largest
        largest = max(largest, sum(map(len, texts)))
        return count_tokens(texts)

    told: list[int] = []
    config = ChunkerConfig()
    chunks = chunk_document(doc, counting, config, progress=told.append)
    assert largest <= 300_000  # bounded batches, never the whole text at once
    assert sum(told) == len(doc.text) and len(told) > 100  # told as it goes, not once at the end
    assert_invariants(doc, chunks, config)
