"""Near-duplicate folding: a repeated passage is shown once, listing every place it stands."""

from __future__ import annotations

from search.dedupe import FOLD_WINDOW, NearDuplicateFolder
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


def test_a_copy_far_down_the_ranking_is_a_result_of_its_own() -> None:
    """A copy more than FOLD_WINDOW candidates below the result (and its last folded copy) is not folded:
    a page of 10 has not read it, so folding it later would hide it from every page."""
    fillers = [f"第{i}条：" + "".join(chr(0x4E00 + 37 * i + j) for j in range(60))
               for i in range(FOLD_WINDOW + 2)]
    near = [QUOTE, *fillers[:FOLD_WINDOW - 1], QUOTE]
    assert folded([[result(i + 1, t) for i, t in enumerate(near)]])[0] == (1, [FOLD_WINDOW + 1])
    far = [QUOTE, *fillers[:FOLD_WINDOW], QUOTE]
    rows = folded([[result(i + 1, t) for i, t in enumerate(far)]])
    assert rows[0] == (1, []) and rows[-1] == (FOLD_WINDOW + 2, [])
    chain = [QUOTE] * 3 * FOLD_WINDOW  # reprints one after another chain, however many there are
    whole = [(1, list(range(2, 3 * FOLD_WINDOW + 1)))]
    assert folded([[result(i + 1, t) for i, t in enumerate(chain)]]) == whole


def test_two_passages_of_one_document_are_two_results() -> None:
    first, second = result(1, QUOTE), result(2, EDITED)
    second.doc_id = first.doc_id
    assert folded([[first, second]]) == [(1, []), (2, [])]


def test_settled_once_the_window_after_the_last_copy_is_read() -> None:
    folder = NearDuplicateFolder()
    folder.add([result(1, QUOTE), result(2, QUOTE)])
    assert not folder.settled(1)  # a further copy may come within the window of the second
    folder.add([result(3 + i, f"第{i}条" + OTHER) for i in range(FOLD_WINDOW)])
    assert folder.settled(1)
