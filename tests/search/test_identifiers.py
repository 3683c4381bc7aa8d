"""Identifiers (`PPR-9087`, `GB/T 7714-2015`) are words: the passage holding one outranks a passage holding
its pieces scattered, its highlight covers it whole, and an index built before identifiers were terms is
re-analysed by the next `semsearch index` without re-embedding anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from index import analysis
from index.builder import IndexBuilder
from search.engine import Engine

# Both "scattered" passages hold every piece of the identifier, more often and in fewer words than the
# passage holding it; with the pieces as the only terms they ranked first in keyword and hybrid mode.
CORPUS = {
    "scattered": "关于第9087号通知：PPR项目组本周完成巡检，PPR系统运行平稳，9087号通知要求的整改已经落实。",
    "exact": (
        "设备编号PPR-9087的压力传感器在例行检查中发现读数漂移，维修人员已于周三更换了该部件，"
        "并对同一批次的其余设备逐台进行了复核，未发现同类问题。"
    ),
    "pipes": "PPR管材广泛用于建筑给水系统，具有耐腐蚀、安装方便等优点。",
    "budget": "2025年第一季度，全市共完成设备更新改造项目312个，总投资达到87亿元。",
    "standard": "参考文献的著录格式按照GB/T 7714-2015执行，论文正文另行排版。",
    "standard_scattered": "GB/T系列标准共发布7714项，2015年修订的部分标准已于年内实施。",
}


def write_corpus(folder: Path) -> Path:
    folder.mkdir()
    for name, text in CORPUS.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def id_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("identifiers")
    IndexBuilder(root / "index").index_paths([write_corpus(root / "corpus")])
    return Engine.open(root / "index")


def top(engine: Engine, query: str, mode: str) -> tuple[str, list[str]]:
    """The first result's document (its file name) and the highlighted text of that result."""
    best = engine.search(query, k=3, mode=mode).results[0]
    return Path(best.doc_id).stem, [best.text[a:b] for a, b in best.highlights]


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
@pytest.mark.parametrize(
    ("query", "doc", "marked"),
    [
        ("PPR-9087", "exact", "PPR-9087"),
        ("ppr-9087 传感器", "exact", "PPR-9087"),
        ("GB/T 7714-2015", "standard", "GB/T 7714-2015"),
        ("GB/T7714-2015", "standard", "GB/T 7714-2015"),
    ],
)
def test_the_exact_identifier_outranks_its_scattered_pieces(
    id_engine: Engine, mode: str, query: str, doc: str, marked: str
) -> None:
    best, highlights = top(id_engine, query, mode)
    assert best == doc
    assert marked in highlights


def test_a_piece_alone_still_finds_both(id_engine: Engine) -> None:
    found = {Path(r.doc_id).stem for r in id_engine.search("9087", k=5, mode="keyword").results}
    assert found == {"exact", "scattered"}


def test_an_index_of_an_older_analyser_works_until_reindexed_then_is_reanalysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    corpus, index = write_corpus(tmp_path / "corpus"), tmp_path / "index"
    # The analysis before identifiers were terms, under its version string.
    with monkeypatch.context() as old:
        old.setattr(analysis, "ANALYZER_VERSION", "2/jieba-search-nohmm+bigrams/snowball-english")
        old.setattr(analysis, "_identifiers", lambda masked: [])
        first = IndexBuilder(index).index_paths([corpus])
    engine = Engine.open(index)
    # Searching the old index still works, on the terms it has (the pieces also count as its words).
    for mode in ("keyword", "hybrid"):
        assert top(engine, "PPR-9087", mode)[0] in CORPUS
    assert engine.search("PPR-9087", k=1, mode="hybrid").results[0].word_share > 0
    assert "older version of the analyser" in caplog.text and "`semsearch index`" in caplog.text
    builder = IndexBuilder(index)
    assert builder.keywords_outdated()

    again = builder.index_paths([corpus])
    assert again.reanalysed and again.embedded == 0 and again.generation != first.generation
    assert "keyword index analysed again" in again.describe() and "published" in again.describe()
    assert not builder.keywords_outdated()
    for mode in ("keyword", "hybrid"):  # the same engine follows the new generation
        assert top(engine, "PPR-9087", mode) == ("exact", ["PPR-9087"])
    # Nothing left to do: the next run changes nothing.
    third = IndexBuilder(index).index_paths([corpus])
    assert not third.reanalysed and third.generation == again.generation
