"""Edge cases of the eval metrics that the dev sets rely on (the sets themselves run in bench/)."""

from __future__ import annotations

from types import SimpleNamespace

from search.evaluate import retrieval_metrics
from search.models import AlsoIn


def _result(doc_id: str, *also: str) -> SimpleNamespace:
    return SimpleNamespace(
        doc_id=doc_id, text="",
        also_in=[AlsoIn(doc_id=d, title="", passage_id=0, start=0, end=0) for d in also],
    )


class _Engine:
    """Answers every query with fixed results: the metric code is what is under test."""

    def __init__(self, results: list[SimpleNamespace]) -> None:
        self.results = results

    def search(self, query: str, k: int, mode: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(results=self.results[:k])


def test_a_paraphrase_folded_into_the_excluded_query_sentence_still_counts() -> None:
    """PAWS-X style: the query's own sentence is in the corpus and excluded; its paraphrase, a
    near-duplicate, is folded into it. The result then stands for the paraphrase at rank 1."""
    query = {"question": "q", "doc_id": "para", "doc_ids": ["para"], "exclude_doc_ids": ["self"]}
    folded = _Engine([_result("self", "para"), _result("other")])
    assert retrieval_metrics(folded, [query], mode="dense")["recall@1"] == 1.0
    alone = _Engine([_result("self"), _result("other"), _result("para")])
    figures = retrieval_metrics(alone, [query], mode="dense")
    assert figures["recall@1"] == 0.0 and figures["recall@5"] == 1.0  # "self" dropped: para is 2nd
