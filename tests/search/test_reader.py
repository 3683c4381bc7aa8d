"""The span reader (`search.reader`) in `ask`: the shipped weights, their checksum, the exported network,
and answers over the default corpus that the sentence extractor withheld or missed (who, which, where)."""

from __future__ import annotations

import json

import pytest

from search import answer as A
from search import reader as R
from search.engine import Engine
from search.errors import ReaderUnavailable

ZQSB = "000_ad61b687c275495d.txt"  # 证券时报网
XINHUA = "003_07e0a4d71f185c6b.txt"  # 新华社


def span_text(r) -> str:
    assert r.answer is not None and r.answer_span is not None, r.message
    return r.answer[r.answer_span[0] : r.answer_span[1]]


def test_the_shipped_weights_are_small_and_named() -> None:
    meta = json.loads((R.WEIGHTS_DIR / R.META_FILE).read_text(encoding="utf-8"))
    size = (R.WEIGHTS_DIR / R.WEIGHTS_FILE).stat().st_size
    assert size == meta["bytes"] <= 40 * 1024 * 1024
    assert any("cmrc2018" in t for t in meta["trained_on"]) and any("drcd" in t for t in meta["trained_on"])
    assert not any("xquad" in t or "news" in t for t in meta["trained_on"])


@pytest.mark.unit
def test_best_span_stays_inside_the_passage_and_in_order() -> None:
    import numpy as np

    start = np.array([[9.0, 0.0, 5.0, 0.0, 8.0]])
    end = np.array([[9.0, 7.0, 0.0, 6.0, 0.0]])
    allowed = np.array([[False, True, True, True, True]])  # token 0 is "no answer", never a span
    # 4+? is not allowed (end before start); the best ordered pair is start 2, end 3.
    assert R.best_spans(start, end, allowed) == [(2, 3, 11.0)]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("在1985 年的 时候", "1985 年的 ", "1985 年"),  # 的 ties the answer to a noun the span left out
        ("于两次重新接球。此后", "两次重新接球。", "两次重新接球"),  # the full stop the span ran into
        ("，  长三角，", "，  长三角，", "长三角"),  # clause marks and white space at both ends
        ("称之为“强制的”", "“强制的", "“强制的"),  # a quoted term keeps its 的
        ("。", "。", "。"),  # never emptied
    ],
)
def test_a_span_loses_the_punctuation_and_particle_at_its_ends(text: str, span: str, expected: str) -> None:
    # The reader's spans end on token boundaries, and the tokenizer glues these characters to words.
    start = text.index(span)
    start, end = R.tidy_span(text, start, start + len(span))
    assert text[start:end] == expected


@pytest.mark.integration
@pytest.mark.parametrize("question", ["长" * 1000, "a " * 500, "\ufdfa" * 400, "😀" * 1000])
def test_a_long_question_is_cut_to_its_first_tokens_and_the_passage_kept(question: str) -> None:
    """A question of more tokens than the pair holds (the API takes 1,000 characters) is read by its start."""
    tokenizer = R.pair_tokenizer(R.base_model_dir() / "tokenizer.json")
    passage = "根据规划，到2025年长三角研发投入强度超过3%。"
    (encoding,) = R.encode_pairs(tokenizer, question, [passage])
    question_tokens = [k for k, s in enumerate(encoding.sequence_ids) if s == 0]
    assert 0 < len(question_tokens) <= R.MAX_QUESTION_TOKENS
    first, last = R.span_of_answer(encoding.offsets, encoding.sequence_ids, 0, len(passage))
    assert passage[encoding.offsets[first][0] : encoding.offsets[last][1]] == passage


@pytest.mark.integration
def test_the_reader_finds_the_answer_inside_a_passage() -> None:
    reader = R.shipped_reader()
    passage = "根据规划，到2025年长三角研发投入强度超过3%，合作发表的国际科技论文篇数达到2.5万篇。"
    other = "成都超算中心是西部地区的算力基础设施，服务航空航天、生物医药等领域。"
    spans = reader.read("到2025年长三角研发投入强度的目标是多少？", [passage, other])
    assert [s.passage for s in spans] == [0, 1]
    found = spans[0]
    assert "3%" in passage[found.start : found.end]
    assert found.score - found.null_score > spans[1].score - spans[1].null_score


@pytest.mark.parametrize(
    ("question", "expected", "doc_ids"),
    [
        ("西南交通大学公共政策研究中心主任是谁？", "陈光", {ZQSB, XINHUA}),
        ("哪些省份加快打造区域科技创新中心？", "湖北", {ZQSB}),
        ("长三角国家技术创新中心在哪里揭牌成立？", "上海", {XINHUA}),
    ],
)
def test_answers_the_extractor_withheld(engine: Engine, question: str, expected: str, doc_ids: set) -> None:
    r = engine.ask(question)
    assert expected in span_text(r)
    assert r.confidence is not None and r.confidence >= A.DEFAULT_THRESHOLD
    first = r.citations[0]
    assert first.doc_id in doc_ids and first.text == r.answer
    assert engine.document(first.doc_id)["text"][first.start : first.end] == first.text


def test_without_weights_the_sentence_extractor_answers(engine: Engine, monkeypatch) -> None:
    def missing() -> R.SpanReader:
        raise ReaderUnavailable("the reader's weights are not at /nowhere")

    monkeypatch.setattr(R, "shipped_reader", missing)
    monkeypatch.setattr(A, "_reader_failed", False)
    r = engine.ask("成都超算中心周边聚集了多少个科技创新项目？")
    assert "59个" in span_text(r)
