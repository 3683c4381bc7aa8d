"""The text analyser: normalisation, tokens, query terms and highlight spans."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import analysis
from index.analysis import (
    GRAM_PREFIX,
    analyze,
    display_term,
    highlight_spans,
    is_gram,
    normalize,
    query_terms,
    query_words,
    term_spans,
    tokenize,
    word_bounds,
)
from index.text import CJK_RUN

ROOT = Path(__file__).resolve().parents[2]


def words(text: str) -> list[str]:
    return [t for t in tokenize(text) if not is_gram(t)]


def highlighted(text: str, query: str) -> list[str]:
    return [text[a:b] for a, b in term_spans(text, query_terms(query))]


# --- normalize --------------------------------------------------------------------------------------------
def test_normalize_simplifies_half_widths_and_lowercases() -> None:
    assert normalize("長三角研發投入強度目標") == "长三角研发投入强度目标"
    assert normalize("ＧＤＰ增長３％，Ｈｅｌｌｏ　World") == "gdp增长3%,hello world"
    assert normalize("") == ""


def test_normalize_keeps_length_where_lowercase_would_not() -> None:
    # "İ".lower() is two code points; normalize must not shift the offsets after it.
    text = "İstanbul 長城"
    assert len(normalize(text)) == len(text)
    assert normalize(text).endswith("长城")


def test_normalize_copes_with_lone_surrogates() -> None:
    text = "a\ud800長b"
    assert normalize(text) == "a\ud800长b"


_cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_traditional = st.sampled_from("長發體會國與對這門東車馬書學們說時開關廣產業經濟裡著")
_fullwidth = st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E)
_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_any_text = st.text(st.one_of(st.characters(), _cjk, _traditional, _fullwidth, _surrogate), max_size=60)
_news_text = st.text(
    st.one_of(_traditional, st.sampled_from("长三角研发投入强度超过的了，。 3%AbC-/.9")), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(_any_text)
def test_normalize_never_changes_length(text: str) -> None:
    assert len(normalize(text)) == len(text)


@settings(max_examples=100, deadline=None)
@given(st.one_of(_any_text, _news_text))
def test_analyze_offsets_point_at_the_term(text: str) -> None:
    norm = normalize(text)
    terms = tokenize(text)
    tokens = analyze(text)
    assert sorted(t.term for t in tokens) == sorted(terms)
    for t in tokens:
        assert 0 <= t.start < t.end <= len(text)
        if CJK_RUN.fullmatch(display_term(t.term)):
            assert norm[t.start : t.end] == display_term(t.term)
        elif analysis._JOINER.search(norm[t.start : t.end]):  # an identifier: its text, less the space
            assert norm[t.start : t.end].replace(" ", "") == t.term


@settings(max_examples=200, deadline=None)
@given(st.one_of(_any_text, _news_text), st.data())
def test_spans_are_sorted_disjoint_and_inside_the_text(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    query = text[start : data.draw(st.integers(start, len(text)))]  # a piece of the text: it matches
    spans = term_spans(text, query_terms(query))
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert all(prev[1] < nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False))  # merged


@settings(max_examples=200, deadline=None)
@given(st.one_of(_any_text, _news_text), st.data())
def test_stored_word_bounds_give_the_same_spans(text: str, data: st.DataObject) -> None:
    """The index stores each passage's `word_bounds` so that highlighting does not segment it again; the
    highlights must be exactly those of segmenting at query time."""
    start = data.draw(st.integers(0, len(text)))
    terms = query_terms(text[start : data.draw(st.integers(start, len(text)))])
    assert term_spans(text, terms, word_bounds(text)) == term_spans(text, terms)


# --- tokens -----------------------------------------------------------------------------------------------
def test_traditional_and_simplified_give_the_same_terms() -> None:
    assert tokenize("長三角研發投入強度目標") == tokenize("长三角研发投入强度目标")
    assert query_terms("長三角研發投入強度目標") == query_terms("长三角研发投入强度目标")


def test_search_mode_words_and_bigrams() -> None:
    terms = tokenize("长三角研发投入")
    assert {"长三角", "三角", "研发", "投入"} <= set(terms)
    # every adjacent pair of a CJK run is also there, as a bigram
    assert {GRAM_PREFIX + g for g in ("长三", "三角", "角研", "研发", "发投", "投入")} <= set(terms)
    assert tokenize("港") == ["港", GRAM_PREFIX + "港"]


def test_out_of_vocabulary_name_matches_through_bigrams() -> None:
    # A made-up name that jieba's dictionary does not hold: jieba splits it differently in the query and
    # in the passage, but the passage holds every bigram of the query.
    passage = set(tokenize("据本报记者林晓飒报道，骁飒科技发布新品"))
    query = [t for t in tokenize("林晓飒 骁飒科技") if is_gram(t)]
    assert query and set(query) <= passage


def test_stop_words_punctuation_and_whitespace_are_dropped() -> None:
    terms = words("这是上海的发展，也是全国的！ The state of the art")
    assert "的" not in terms and "是" not in terms and "也" not in terms
    assert "the" not in terms and "of" not in terms
    assert not any(t.strip(" ，！,!") != t or not t for t in terms)
    assert {"上海", "发展", "全国", "state", "art"} <= set(terms)
    assert tokenize("的") == [] and tokenize("   ，。 ") == []


def test_english_is_lowercased_and_stemmed() -> None:
    assert words("Indexing") == words("indexed") == words("INDEXES")
    assert words("Policies") == words("policy")


def test_stems_of_inflected_words_meet() -> None:
    assert words("Indexing") == words("indexed") == words("INDEXES") == ["index"]
    assert words("Policies") == words("policy")
    assert words("running") == words("runs") == ["run"]


def test_numbers_are_terms() -> None:
    terms = words("2025年研发投入强度超过3%，达1,054.5亿元，增长12.5%")
    assert {"2025", "3", "3%", "1054.5", "12.5", "12.5%"} <= set(terms)
    assert {"2020", "2021"} <= set(words("2020,2021年"))  # a list, not a thousands separator


def test_letter_digit_codes_are_kept_whole() -> None:
    assert {"5g", "h1n1", "gpt4"} <= set(words("5G网络 H1N1 GPT4"))


@pytest.mark.parametrize(
    ("text", "whole", "pieces"),
    [
        ("编号PPR-9087号", "ppr-9087", {"ppr", "9087"}),
        ("R123-78", "r123-78", {"r", "123", "78", "r123"}),
        ("按GB/T 7714-2015著录", "gb/t7714-2015", {"gb", "t", "7714", "2015"}),
        ("GB/T7714-2015", "gb/t7714-2015", {"gb", "7714", "2015"}),  # with or without the space
        ("COVID-19疫苗", "covid-19", {"covid", "19"}),
        ("5G网络", "5g", {"5", "g"}),
        ("H1N1流感", "h1n1", {"h", "1", "n"}),
        ("iPhone15发布", "iphone15", {"15"}),
        ("ＰＰＲ－９０８７", "ppr-9087", {"ppr", "9087"}),  # full-width
        ("PPR\u20139087", "ppr-9087", {"ppr", "9087"}),  # an en dash
        ("版本v2.1.3", "v2.1.3", {"v2"}),
        ("2B-11迫击炮", "2b-11", {"2b", "11"}),  # a code may start with a digit
    ],
)
def test_identifiers_are_terms_whole_beside_their_pieces(text: str, whole: str, pieces: set[str]) -> None:
    terms = words(text)
    assert whole in terms
    assert pieces <= set(terms)  # a query for a piece alone still matches


@pytest.mark.parametrize(
    "text",
    [
        "2025年研发投入强度超过3%，达1,054.5亿元",
        "2025-2026年度预算",  # plain numbers joined: not an identifier
        "长三角一体化发展加速，成渝地区双城经济圈建设提速",
        "e-mail and state-of-the-art, U.S. policy 1.5",
        "the 2-point conversion of a 3-year-old in 24-hour coverage",  # numbers joined to words
        "http://" + "a1" * 40 + ".com",  # too long to be typed as one term
    ],
)
def test_text_without_identifiers_keeps_its_terms(text: str) -> None:
    # Every term is one the words, numbers and CJK rules make; no joined or glued term appears.
    assert all("-" not in t and "/" not in t and " " not in t for t in words(text))
    assert words("2025年") == ["年", "2025"]


def test_a_chain_too_long_to_be_one_term_keeps_its_codes() -> None:
    chain = "-".join(["x1"] * 30)  # 89 characters: not kept whole, its letter-digit runs still are
    assert chain not in words(chain) and "x1" in words(chain)


def test_an_identifier_is_one_query_word() -> None:
    assert query_words("PPR-9087的处理情况") == ("处理", "情况", "ppr-9087")
    # For an index analysed before identifiers were terms: the pieces count.
    old = query_words("PPR-9087的处理情况", whole_identifiers=False)
    assert old == ("处理", "情况", "ppr", "9087", "ppr-9087")
    assert query_words("GB/T 7714-2015") == ("gb/t7714-2015",)
    assert query_words("5G网络") == ("网络", "5g")
    assert query_words("9087号 PPR") == ("号", "9087", "ppr")  # pieces typed apart stay words


def test_query_terms_are_distinct_and_readable() -> None:
    terms = query_terms("研发 研发投入")
    assert len(terms) == len(set(terms))
    assert "研发" in terms and "发投" in terms
    assert not any(t.startswith(GRAM_PREFIX) for t in terms)


def test_tokenize_is_thread_safe() -> None:
    texts = [f"长三角第{i}届研发投入论坛 Indexing run {i}" for i in range(40)]
    expected = [tokenize(t) for t in texts]
    results: dict[int, list[str]] = {}

    def work(i: int) -> None:
        results[i] = tokenize(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(texts))] == expected


def test_jieba_is_loaded_lazily_and_quietly() -> None:
    code = (
        "import sys; from index import analysis, text; assert text._jieba is None; "
        "print(analysis.tokenize('长三角研发投入')[:1])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['长三']" or "长三角" in out.stdout
    assert out.stderr == ""


# --- highlight spans -------------------------------------------------------------------------------------
def test_spans_highlight_query_words_in_the_original_text() -> None:
    text = "長三角研發投入強度超過3%，其中上海研发投入居首"
    assert highlighted(text, "长三角 研发投入") == ["長三角研發投入", "研发投入"]
    assert highlighted("长三角研发投入强度超过3%", "长三角 研发投入") == ["长三角研发投入"]


def test_spans_skip_bigram_noise() -> None:
    # 院办 is a bigram of the query, but in 医院办公室 it straddles two words.
    text = "医院办公室"
    assert (1, 3) not in term_spans(text, query_terms("国务院办公厅"))
    assert highlighted(text, "国务院办公厅") == ["办公"]
    assert highlighted("研发投入", "发投") == []
    assert term_spans(text, query_terms("国务院办公厅"), word_bounds(text)) == [(2, 4)]


def test_spans_latin_case_stem_and_full_width() -> None:
    text = "Indexing policies: ＡＩ and 5G in 2025."
    assert highlighted(text, "indexed policy") == ["Indexing", "policies"]
    assert highlighted(text, "ai 2025") == ["ＡＩ", "2025"]
    assert highlighted(text, "5g") == ["5G"]


def test_spans_cover_an_identifier_whole() -> None:
    text = "设备编号PPR-9087的传感器，按GB/T 7714-2015著录；另见第9087号的PPR项目"
    assert highlighted(text, "PPR-9087") == ["PPR-9087", "9087", "PPR"]
    assert highlighted(text, "gb/t7714-2015") == ["GB/T 7714-2015"]
    assert highlighted("COVID-19疫苗", "covid-19") == ["COVID-19"]


def test_spans_of_out_of_vocabulary_names() -> None:
    # No dictionary word covers these names; their single characters are terms and merge into one span.
    text = "据本报记者林曉颯报道，骁飒科技发布新品"
    assert highlighted(text, "林晓飒 骁飒科技") == ["林曉颯", "骁飒科技"]


def test_a_character_matched_alone_is_no_highlight() -> None:
    """The 年 of another year and the 个 of a question mark nothing the reader asked about; a character
    that touches another match, a name of single characters, or a query of one character still mark."""
    text = "2019年上海GDP增长6%，2020年增速回落。全年新增企业一万个"
    marks = [text[a:b] for a, b in highlight_spans(text, query_terms("2023年上海的GDP是多少个"))]
    assert marks == ["上海GDP"]
    assert "年" in [text[a:b] for a, b in term_spans(text, query_terms("2023年上海的GDP是多少个"))]
    assert [text[a:b] for a, b in highlight_spans(text, query_terms("2019年的上海"))] == ["2019年上海"]
    name = "据本报记者林曉颯报道"
    assert [name[a:b] for a, b in highlight_spans(name, query_terms("林晓飒 记者"))] == ["记者林曉颯"]
    assert [text[a:b] for a, b in highlight_spans(text, query_terms("年"))] == ["年", "年"]


def test_spans_skip_stop_words_between_words() -> None:
    assert highlighted("强大的算力支撑", "强大 算力支撑") == ["强大", "算力支撑"]


def test_spans_of_nothing() -> None:
    assert term_spans("", ["长三角"]) == []
    assert term_spans("长三角", []) == []
    assert term_spans("长三角", query_terms("的")) == []
    assert term_spans("长三角", query_terms("珠三角")) == [(1, 3)]  # 三角 is a word of the query


def test_query_grams_are_the_bigram_tokens_of_analyze() -> None:
    """The hybrid phrase run reads the query's bigrams from `query_grams`, which skips segmenting words:
    it must give the very bigram tokens, offsets and order `analyze` gives."""
    from index.analysis import analyze, is_gram, query_grams

    for query in ["到2025年长三角研发投入强度的目标是多少", "長三角 研發投入 PPR-9087 強度", "who founded it",
                  "英国首相是谁？袭击造成几人受伤", "一"]:
        assert list(query_grams(query)) == [t for t in analyze(query) if is_gram(t.term)], query
