"""The rules of Chinese text (index/text.py), and that every part of the pipeline follows the same ones."""

from __future__ import annotations

import jieba
import pytest

from index import analysis, text
from index.chunker import SENTENCE_END
from index.loaders import load_documents
from index.parts import PartedDict, write_parts
from index.repair import completes_word
from search import answer, evaluate
from search.generate import question_language
from tests.conftest import DATA

# One character of each block: extension A, basic, compatibility, extension B, extension G.
EVERY_BLOCK = "㐀中豈𠀀𰀀"


@pytest.mark.parametrize("char", list(EVERY_BLOCK))
def test_every_ideograph_block_is_cjk_everywhere(char: str) -> None:
    """Issue 16: five copies disagreed on the extension blocks (answers, generation and evaluation
    missed extension B and later; repair missed G and H)."""
    assert text.is_cjk(char) and text.is_spaceless(char) and text.has_cjk(f"ab{char}")
    assert text.CJK_RUN.fullmatch(char * 2)
    assert evaluate._cmrc_tokens(char * 2) == [char, char], "CJK characters count one by one"
    assert question_language(char * 6 + " ok") == "zh"


def test_names_in_rare_characters_are_language_zh_and_sentences() -> None:
    question = "𠀾𡈼𡋗𡑭𢂘 is who"  # a name in extension-B characters, asked in mixed text
    assert question_language(question) == "zh"
    assert text.count_cjk(question) == 5
    assert not text.is_cjk("a") and not text.is_cjk("。") and text.is_spaceless("か")


def test_chunker_and_answers_end_sentences_at_the_same_places() -> None:
    """Issue 16: the chunker split at "!" between CJK characters, the answers did not."""
    sample = "长三角研发投入强度超过3%!上海居首；“目标明确。”Dr. Li said so. It grew 3.5 times.\n标题"
    chunker_ends = [m.end() for m in SENTENCE_END.finditer(sample)]
    answer_ends = [end for _, end in answer.split_sentences(sample)]
    assert chunker_ends[:3] == answer_ends[:3]
    pieces = [sample[s:e] for s, e in answer.split_sentences(sample)]
    assert pieces == ["长三角研发投入强度超过3%!", "上海居首；", "“目标明确。”", "Dr. Li said so.",
                      "It grew 3.5 times.", "标题"]


def test_paragraphs_split_alike_in_text_files_and_jsonl_records(tmp_path) -> None:
    body = "第一段第一句。\n  \n第二段。\r\n\u3000\r\n第三段。"
    assert text.split_paragraphs(body) == ["第一段第一句。", "第二段。", "第三段。"]
    assert text.split_paragraphs("一行。\n二行。\n\n") == ["一行。", "二行。"]
    record = tmp_path / "a.jsonl"
    record.write_text('{"doc_id": "a", "text": "第一段。\\n \\n第二段。"}\n', encoding="utf-8")
    docs = [doc for _, doc in load_documents([record])]
    assert [docs[0].text[s:e] for s, e in docs[0].paragraphs] == ["第一段。", "第二段。"]


def test_one_jieba_dictionary_is_loaded() -> None:
    """Issue 16: analysis, repair and answers each loaded their own dictionary (about a second each)."""
    assert analysis._segmenter() is text.jieba_tokenizer()
    assert completes_word("加快技术研", "发、推广")
    assert [w for w, _, _ in answer._pos_cut("上海研发投入")]
    assert answer._posseg.tokenizer is text.jieba_tokenizer()
    assert not jieba.dt.initialized, "jieba's global dictionary is never loaded besides ours"
    assert text.jieba_cache_file().exists()


def test_a_new_process_reads_jieba_by_parts_and_segments_as_with_the_whole_dictionary(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cold CLI: a query reads the few parts of the dictionary its characters need (not the whole 9 MB,
    ~0.4 s), and every word comes out as with the whole dictionary; a process that segments a corpus ends
    up with the whole dictionary as a plain dict."""
    whole = text.jieba_tokenizer()  # the test process's: whole or parted, the same words either way
    (tmp_path / "jieba").mkdir()
    (tmp_path / "jieba" / "jieba.cache").write_bytes(text.jieba_cache_file().read_bytes())
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path))

    monkeypatch.setattr(text, "_jieba", None)
    first = text.jieba_tokenizer()  # a fresh cache: loaded whole, the parts written for the next process
    assert type(first.FREQ) is dict and text.jieba_parts_file().is_file()

    monkeypatch.setattr(text, "_jieba", None)
    parted = text.jieba_tokenizer()
    assert isinstance(parted.FREQ, PartedDict)
    assert parted.total == first.total
    query = "到2025年长三角研发投入强度的目标是多少"
    assert parted.lcut_for_search(query, HMM=False) == whole.lcut_for_search(query, HMM=False)
    assert parted.FREQ.parts_read <= 2 * len(query)  # of the words starting at each character

    corpus = [p.read_text(encoding="utf-8") for p in sorted(DATA.glob("*.txt"))]
    assert corpus
    for document in corpus:
        for paragraph in text.split_paragraphs(document):
            assert list(parted.tokenize(paragraph, mode="search", HMM=False)) == list(
                whole.tokenize(paragraph, mode="search", HMM=False)
            )
    assert type(parted.FREQ) is dict and len(parted.FREQ) == len(whole.FREQ)


def test_a_stale_or_damaged_parts_file_is_not_used(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts made from another jieba dictionary, or cut short, are refused (the dictionary is loaded whole
    and the parts written again)."""
    whole = text.jieba_tokenizer()
    path = tmp_path / "jieba.parts"
    write_parts(path, dict(whole.FREQ), [*text._dictionary_key(), whole.total])
    assert text._open_parts(path, jieba.Tokenizer())
    path.write_bytes(path.read_bytes()[:-100])
    assert not text._open_parts(path, jieba.Tokenizer())
    write_parts(path, dict(whole.FREQ), [*text._dictionary_key(), whole.total])
    monkeypatch.setattr(text, "_dictionary_key", lambda: ["another jieba"])
    assert not text._open_parts(path, jieba.Tokenizer())
