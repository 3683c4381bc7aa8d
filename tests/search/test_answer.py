"""Extractive answers with citations (`search.answer`, `semsearch ask`, `POST /ask`), with the real model over
the default corpus, plus the pieces (sentences, question types, spans, answer metrics) on small inputs."""

from __future__ import annotations

import json

import pytest

from index.text import MAX_SENTENCE_CHARS
from search import answer as A
from search.engine import Engine, QueryError
from search.evaluate import answer_em, answer_f1, contains_answer, normalize_answer, reliability_table
from search.models import AskResponse, SearchResult

ZQSB = "000_ad61b687c275495d.txt"  # 证券时报网
XINHUA = "003_07e0a4d71f185c6b.txt"  # 新华社

R_AND_D = "到2025年长三角研发投入强度的目标是多少？"
CHENGDU = "成都超算中心周边聚集了多少个科技创新项目？"
SHANGHAI = "2023年上海的GDP是多少？"


@pytest.fixture(scope="module")
def answers(engine: Engine) -> dict[str, AskResponse]:
    """The acceptance questions, asked once for the module (with the default threshold)."""
    return {q: engine.ask(q) for q in (R_AND_D, CHENGDU, SHANGHAI)}


def result(text: str) -> SearchResult:
    return SearchResult(rank=1, score=1.0, passage_id=1, doc_id="d", title="", paragraph=0, start=0,
                        end=len(text), text=text)


def span_text(r: AskResponse) -> str:
    assert r.answer is not None and r.answer_span is not None
    return r.answer[r.answer_span[0] : r.answer_span[1]]


def assert_citations_exact(engine: Engine, r: AskResponse) -> None:
    for c in r.citations:
        assert engine.document(c.doc_id)["text"][c.start : c.end] == c.text


# --- acceptance ------------------------------------------------------------------------------------
def test_rd_intensity_target(engine: Engine, answers: dict[str, AskResponse]) -> None:
    r = answers[R_AND_D]
    assert r.answer is not None and "超过3%" in r.answer
    assert "3%" in span_text(r)
    first = r.citations[0]
    assert (first.n, first.doc_id, first.source) == (1, ZQSB, "证券时报网")
    assert first.text == r.answer
    assert_citations_exact(engine, r)
    assert 0.5 <= r.confidence <= 1.0
    assert r.passages and r.message is None


def test_chengdu_projects(engine: Engine, answers: dict[str, AskResponse]) -> None:
    r = answers[CHENGDU]
    assert r.answer is not None and "59个" in span_text(r)
    assert r.citations[0].doc_id == XINHUA
    assert_citations_exact(engine, r)


def test_question_not_in_corpus_gets_no_answer(answers: dict[str, AskResponse]) -> None:
    r = answers[SHANGHAI]
    assert r.answer is None and r.answer_span is None and r.citations == []
    assert r.passages, "the closest passages are still listed"
    assert r.message and "no confident answer" in r.message
    assert r.confidence is not None and r.confidence < A.DEFAULT_THRESHOLD


@pytest.mark.parametrize("path", ["reader", "sentences"])
@pytest.mark.parametrize(
    "question",
    ["到2030年长三角研发投入强度的目标是多少？", "2023年宜宾GDP增速在四川排第几？"],
)
def test_a_question_about_another_year_gets_no_answer(
    engine: Engine, monkeypatch, path: str, question: str
) -> None:
    """The articles give the 2025 target and 宜宾's ranks of 2016-2020: a question about another year reads
    like them but is not answered by them, in either answer path."""
    monkeypatch.setenv("SEMSEARCH_ANSWER_READER", path)
    r = engine.ask(question)
    assert r.answer is None and r.citations == [], (r.answer, r.confidence)
    assert r.confidence is not None and r.confidence < A.DEFAULT_THRESHOLD


def test_a_number_of_the_question_missing_from_the_passage_gates_english_questions_too() -> None:
    passage = "到2025年，长三角研发投入强度超过3%。"
    english = A.Question.parse("What is the target for 2030?")
    assert A.entity_gate(english, result(passage)) == A.NUMBER_GATE
    assert A.entity_gate(A.Question.parse("What is the target for 2025?"), result(passage)) == 1.0
    chinese = A.Question.parse("到2030年长三角的目标是多少？")
    same_year = A.entity_gate(A.Question.parse(R_AND_D), result(passage))
    assert A.entity_gate(chinese, result(passage)) < 0.5 * same_year


def test_missing_key_entities_are_seen() -> None:
    q = A.Question.parse(SHANGHAI)
    assert {"2023", "上海"} <= set(q.entities)
    assert q.qtype == "number"
    assert A._entity_share(q.entities, "在“双城”赋能下，宜宾gdp增速，也从2016年") < 0.5


def test_threshold_zero_always_answers_and_env_overrides(engine: Engine, monkeypatch) -> None:
    r = engine.ask(SHANGHAI, threshold=0.0)
    assert r.answer is not None and r.citations
    assert_citations_exact(engine, r)
    monkeypatch.setenv(A.THRESHOLD_ENV, "1")
    assert engine.ask(R_AND_D).answer is None
    monkeypatch.setenv(A.THRESHOLD_ENV, "high")
    with pytest.raises(QueryError, match=A.THRESHOLD_ENV):
        engine.ask(R_AND_D)


def test_filters_restrict_the_answer(engine: Engine) -> None:
    from search.filters import parse_filters

    r = engine.ask(R_AND_D, filters=parse_filters(doc_ids=[XINHUA]), threshold=0.0)
    assert {p.doc_id for p in r.passages} == {XINHUA}
    assert all(c.doc_id == XINHUA for c in r.citations)


def test_near_duplicate_passages_are_cited_too(engine: Engine) -> None:
    """The quote of 陈光 stands in both articles: the answer sentence cites both places, exactly."""
    results = engine.search("西南交通大学公共政策研究中心主任陈光教授怎么说", k=5).results
    folded = next(r for r in results if r.also_in)
    # The two articles word the quote differently; either may stand for the pair.
    start = folded.text.rindex("“", 0, folded.text.index("创新资源富集"))
    end = folded.text.index("。", start) + 1
    cands = A.citations_for(engine, A.Candidate(result=folded, start=start, end=end))
    assert len(cands) >= 2 and {c.doc_id for c in cands} == {ZQSB, XINHUA}
    assert [c.n for c in cands] == list(range(1, len(cands) + 1))
    for c in cands:
        text = engine.document(c.doc_id)["text"]
        assert text[c.start : c.end] == c.text
        assert "西部" in c.text


# --- CLI and HTTP ----------------------------------------------------------------------------------
def test_cli_ask_json(seed_index, capsys) -> None:
    from api.cli import main

    assert main(["ask", CHENGDU, "--index", str(seed_index), "--k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    from search.models import AskResponse

    assert set(out) == set(AskResponse.model_fields), "the body POST /ask answers"
    assert out["mode"] == "extract"
    assert "59个" in out["answer"][out["answer_span"][0] : out["answer_span"][1]]
    assert out["citations"][0]["doc_id"] == XINHUA and len(out["passages"]) == 3


def test_cli_ask_text_marks_span_and_citations(seed_index, capsys) -> None:
    from api.cli import main

    assert main(["ask", R_AND_D, "--index", str(seed_index), "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "【" in out and "3%" in out.split("【", 1)[1].split("】", 1)[0]
    assert f"[1] 多地布局_十四五_区域创新中心建设  (证券时报网 · 2021-11-29)  {ZQSB}:" in out
    assert "passages:" in out


def test_http_ask(engine: Engine) -> None:
    from fastapi.testclient import TestClient

    from api.server import create_app

    with TestClient(create_app(engine=engine), base_url="http://localhost") as client:
        r = client.post("/ask", json={"question": R_AND_D, "k": 3, "filters": {"source": ["证券时报网"]}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert "3%" in body["answer"][body["answer_span"][0] : body["answer_span"][1]]
        assert body["citations"][0]["doc_id"] == ZQSB
        assert body["passages"] and all(p["source"] == "证券时报网" for p in body["passages"])
        r = client.post("/ask", json={"question": R_AND_D, "k": 2, "doc_id": XINHUA})  # flat filter fields
        assert r.status_code == 200 and {p["doc_id"] for p in r.json()["passages"]} == {XINHUA}
        r = client.post("/ask", json={"question": SHANGHAI})
        assert r.status_code == 200 and r.json()["answer"] is None and r.json()["passages"]
        r = client.post("/ask", json={"question": " "})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        r = client.post("/ask", json={"question": R_AND_D, "mode": "poetry"})
        assert r.status_code == 400 and "mode" in r.json()["error"]["message"]


# --- the pieces ------------------------------------------------------------------------------------
def test_split_sentences_keeps_offsets() -> None:
    text = (
        "标题\n\n他说：“今年增长3.5%。”随后离开！第三句；第四句\n"
        "Dr. Smith met J. Doe in the U.S. today. Prices rose 2.5 percent."
    )
    spans = A.split_sentences(text)
    pieces = [text[s:e] for s, e in spans]
    assert pieces == [
        "标题", "他说：“今年增长3.5%。”", "随后离开！", "第三句；", "第四句",
        "Dr. Smith met J. Doe in the U.S. today.", "Prices rose 2.5 percent.",
    ]  # fmt: skip


def test_long_run_on_sentences_are_cut_at_commas() -> None:
    text = "，".join(["这是一个很长的分句"] * 80) + "。"
    spans = A.split_sentences(text)
    assert len(spans) > 1 and all(e - s <= MAX_SENTENCE_CHARS for s, e in spans)
    assert "".join(text[s:e] for s, e in spans) == text


@pytest.mark.parametrize(
    ("question", "qtype"),
    [
        ("到2025年长三角研发投入强度的目标是多少？", "number"),
        ("成都超算中心哪一年投运？", "date"),
        ("这一模式是由谁改编的？", "person"),
        ("超算中心位于哪里？", "place"),
        ("《战国无双3》是由哪两个公司合作开发的？", "which"),
        ("锣鼓经是什么？", "what"),
        ("How many points did the Panthers defense surrender?", "number"),
        ("When did the Scholastic Magazine of Notre dame begin publishing?", "date"),
        ("Who was the Super Bowl 50 MVP?", "person"),
        ("Where did Super Bowl 50 take place?", "place"),
    ],
)
def test_question_type(question: str, qtype: str) -> None:
    assert A.question_type(question) == qtype


@pytest.mark.parametrize(
    ("question", "sentence", "expected"),
    [
        (R_AND_D, "根据规划，到2025年长三角研发投入强度超过3%，合作发表论文达到2.5万篇。", "超过3%"),
        (CHENGDU, "同时在超算中心周边区域也聚集科技创新项目59个，总投资超过1700亿元。", "59个"),
        ("成都超算中心哪一年投运？", "位于成都科学城内的成都超算中心，自2020年投运以来。", "2020年"),
        ("How many tackles did Kuechly register?", "Luke Kuechly registered 118 tackles in 2015.", "118"),
        ("锣鼓经是什么？", "锣鼓经是大陆传统器乐及戏曲里面常用的打击乐记谱方法，以中文字来表示。",
         "大陆传统器乐及戏曲里面常用的打击乐记谱方法"),
    ],
)
def test_answer_span(question: str, sentence: str, expected: str) -> None:
    span = A.answer_span(sentence, A.Question.parse(question))
    assert span is not None and sentence[span[0] : span[1]] == expected


def test_answer_metrics_follow_cmrc() -> None:
    assert normalize_answer("  “光荣”和 ω-Force。") == "光荣和ωforce"
    assert answer_em("光荣和ω-force", ["光荣和ω-force", "光荣"]) == 1.0
    assert answer_em("光荣", ["光荣和ω-force"]) == 0.0
    assert answer_f1("136 次", ["136次"]) == 1.0
    assert answer_f1("超过3%", ["3%"]) == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert answer_f1("the four games", ["four"]) == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))
    assert answer_f1("无关", ["3%"]) == 0.0
    assert contains_answer("研发投入强度超过3%，", ["3 %"]) and not contains_answer("3", ["3%"])
    table = reliability_table([0.05, 0.15, 0.95, 0.91], [0.0, 1.0, 1.0, 0.0])
    assert table == [
        {"bin": "0.0-0.1", "n": 1, "predicted": 0.05, "observed": 0.0},
        {"bin": "0.1-0.2", "n": 1, "predicted": 0.15, "observed": 1.0},
        {"bin": "0.9-1.0", "n": 2, "predicted": 0.93, "observed": 0.5},
    ]
