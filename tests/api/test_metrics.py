"""GET /metrics: Prometheus text that the official parser reads, and counters that move with the traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.security import SecuritySettings
from api.server import create_app
from search.engine import Engine
from tests.api.conftest import copy_index

KEY = "metrics-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, read by prometheus_client's parser."""
    response = client.get("/metrics", headers=headers or AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def app_client(seed_index: Path, engine: Engine,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    index = copy_index(seed_index, tmp_path_factory.mktemp("metrics"))
    own = Engine.open(index)
    own._embedder = engine.embedder  # the session's loaded model (the factory shares it anyway)
    security = SecuritySettings(api_key=KEY, rate_limit=60)  # a burst of 6, then one a second
    with TestClient(create_app(engine=own, security=security), base_url="http://localhost") as client:
        yield client


def test_counters_move_with_searches_answers_refusals_and_writes(app_client: TestClient) -> None:
    before = scrape(app_client)
    def search(**params: str) -> int:
        return app_client.get("/search", params=params, headers=AUTH).status_code

    def ask(question: str) -> dict:
        return app_client.post("/ask", json={"question": question}, headers=AUTH).json()

    # the second search is a cache hit
    for q in ("长三角研发投入强度", "长三角研发投入强度", "新型智能算力供应中心"):
        assert search(q=q) == 200
    assert search(q="超算中心", mode="keyword") == 200
    given, withheld = ask("成都超算中心周边聚集了多少个科技创新项目？"), ask("2023年上海的GDP是多少？")
    assert given["answer"] and withheld["answer"] is None
    statuses = [app_client.get("/search", params={"q": "成渝"}).status_code for _ in range(30)]  # no key
    assert 429 in statuses
    note = {"doc_id": "metrics-note", "title": "笔记", "text": "宜宾正举全市之力推进大学城建设，新校区开学。"}
    job = app_client.post("/documents?wait=120", headers=AUTH, json={"documents": [note]})
    assert job.status_code == 200 and job.json()["state"] == "done", job.text
    assert app_client.get("/documents/no-such-document", headers=AUTH).status_code == 404
    assert app_client.get("/no/such/path/123").status_code == 404
    assert app_client.request("BREW", "/search").status_code in (400, 405)
    after = scrape(app_client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("semsearch_searches_total", mode="hybrid") >= 3 + 2  # each answer runs a search too
    assert moved("semsearch_searches_total", mode="keyword") == 1
    assert moved("semsearch_search_cache_total", result="hit") >= 1
    assert moved("semsearch_answers_total", mode="extract", result="given") == 1
    assert moved("semsearch_answers_total", mode="extract", result="withheld") == 1
    assert moved("semsearch_rate_limited_total", route="/search") == statuses.count(429)
    assert moved("semsearch_http_requests_total", route="/search", method="GET", status="429") == \
        statuses.count(429)
    assert moved("semsearch_http_requests_total", route="/ask", method="POST", status="200") == 2
    assert moved("semsearch_http_request_duration_seconds_count", route="/search", method="GET") >= 34
    assert moved("semsearch_write_jobs_total", kind="add", outcome="done") == 1
    assert moved("semsearch_write_job_duration_seconds_count", kind="add") == 1
    assert moved("semsearch_embedded_passages_total") >= 1
    assert value(after, "semsearch_embedding_passages_per_second") > 0
    assert moved("semsearch_generation") == 1
    assert moved("semsearch_documents") == 1
    # route templates, not raw paths: ids never become labels
    documents = "/documents/{doc_id:path}"
    assert moved("semsearch_http_requests_total", route=documents, method="GET", status="404") == 1
    assert moved("semsearch_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not any("no-such-document" in str(labels) or "/no/such" in str(labels) for _n, labels in after)
    assert moved("semsearch_http_requests_total", route="/search", method="other", status="405") == 1
    assert not any("BREW" in str(labels) for _n, labels in after)


def test_metrics_follow_the_read_key_rule(engine: Engine) -> None:
    open_reads = create_app(engine=engine, security=SecuritySettings(api_key=KEY, rate_limit=0))
    with TestClient(open_reads, base_url="http://localhost") as client:
        assert client.get("/metrics").status_code == 200
    closed = create_app(engine=engine,
                        security=SecuritySettings(api_key=KEY, reads_need_key=True, rate_limit=0))
    with TestClient(closed, base_url="http://localhost") as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert scrape(client, AUTH)
