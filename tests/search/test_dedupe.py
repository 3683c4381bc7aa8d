"""Near-duplicate folding: a repeated passage is shown once, listing every place it stands."""

from __future__ import annotations

from search.dedupe import NearDuplicateFolder
from search.models import SearchResult

QUOTE = (
    "陈光教授认为，西部地区创新资源富集，高校和科研院所众多，成渝地区双城经济圈建设为区域创新中心"
    "提供了难得的机遇。"
)
EDITED = QUOTE.replace("西部地区创新资源富集", "西部许多地区创新资源富集")
OTHER = (
    "长三角国家技术创新中心日前在上海正式揭牌成立，坚持共需、共建、共享、共治理念，"
    "聚焦集成电路、生物医药和人工智能等重点产业，服务国家战略。"
)


def result(passage_id: int, text: str) -> SearchResult:
    return SearchResult(
        rank=passage_id, score=1.0 / passage_id, passage_id=passage_id, doc_id=f"doc{passage_id}",
        title=f"标题{passage_id}", paragraph=0, start=0, end=len(text), text=text,
    )


def folded(steps: list[list[SearchResult]]) -> list[tuple[int, list[int]]]:
    folder = NearDuplicateFolder()
    for step in steps:
        folder.add(step)
    return [(r.passage_id, [a.passage_id for a in r.also_in]) for r in folder.results]


def test_copies_and_small_edits_fold_into_the_best_ranked() -> None:
    texts = [QUOTE, OTHER, EDITED, QUOTE]
    assert folded([[result(i + 1, t) for i, t in enumerate(texts)]]) == [(1, [3, 4]), (2, [])]


def test_adding_in_steps_folds_like_adding_at_once() -> None:
    texts = [QUOTE, EDITED, OTHER, QUOTE, "短标题", "短标题", OTHER]
    whole = folded([[result(i + 1, t) for i, t in enumerate(texts)]])
    for cut in range(len(texts) + 1):
        rows = [result(i + 1, t) for i, t in enumerate(texts)]
        assert folded([rows[:cut], rows[cut:]]) == whole
    assert whole == [(1, [2, 4]), (3, [7]), (5, []), (6, [])]  # headings are too short to be duplicates
