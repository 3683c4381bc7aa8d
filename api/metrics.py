"""`GET /metrics`: the service in the Prometheus text format (the official `prometheus_client`).

Requests are counted by route *template* (`/documents/{doc_id}`, never the raw path, so ids cannot
explode the label set), method and status, with a latency histogram. What the engine did (searches by
mode, answer-cache hits, answers given and withheld), the published generation and its size, and the
folder sync's last run are read from the engine and the watcher when Prometheus scrapes, so nothing in
`search/` or `index/` knows about monitoring. Write jobs are counted by kind and outcome with their
duration as they finish, and every build (a job or a folder sync) adds the passages it embedded and the
time that took, from its summary.

Each app has its own registry: tests and embedders that create several apps in one process never
collide, and the default registry's process metrics are added to it (`process_*`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security import read_access

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
UNMATCHED = "unmatched"  # requests no route took (404s of made-up paths): one label for all of them
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others: "other"


class Metrics:
    """The registry of one app and the instruments the middleware and the job queue feed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter("semsearch_http_requests", "HTTP requests by route template, method and "
                                "status", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("semsearch_http_request_duration_seconds", "time to answer a request, "
                                 "by route template", ["route", "method"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.rate_limited = Counter("semsearch_rate_limited", "requests refused by the rate limit (429)",
                                    ["route"], registry=self.registry)
        self.jobs = Counter("semsearch_write_jobs", "finished write jobs by kind (add, delete) and "
                            "outcome (done, failed)", ["kind", "outcome"], registry=self.registry)
        self.job_seconds = Histogram("semsearch_write_job_duration_seconds", "time a write job ran",
                                     ["kind"], buckets=JOB_BUCKETS, registry=self.registry)
        self.embedded = Counter("semsearch_embedded_passages", "passages embedded by builds (jobs and "
                                "folder syncs)", registry=self.registry)
        self.embed_seconds = Counter("semsearch_embedding_seconds", "time builds spent embedding",
                                     registry=self.registry)
        self.embed_rate = Gauge("semsearch_embedding_passages_per_second", "embedding throughput of the "
                                "last build that embedded anything", registry=self.registry)

    def record_build(self, summary: dict[str, Any] | None) -> None:
        """Count a build's embedding from its summary (`BuildSummary.to_dict()`)."""
        if not summary:
            return
        embedded, rate = int(summary.get("embedded") or 0), float(summary.get("passages_per_s") or 0.0)
        if embedded and rate > 0:
            self.embedded.inc(embedded)
            self.embed_seconds.inc(embedded / rate)
            self.embed_rate.set(rate)

    def job_finished(self, job: Any) -> None:
        """The job queue's hook: a job is done or failed."""
        self.jobs.labels(job.kind, job.state).inc()
        if job.started is not None and job.finished is not None:
            self.job_seconds.labels(job.kind).observe(max(0.0, job.finished - job.started))
        self.record_build(job.summary)

    def expose(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    """What the engine and the watcher hold, read at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        engine = self.app.state.engine
        counters = getattr(engine, "counters", None)  # an engine stand-in of a test may have none
        counts = counters.snapshot() if counters is not None else {}
        searches = CounterMetricFamily("semsearch_searches", "searches run by the engine, by retrieval mode "
                                       "(each answer runs one too)", labels=["mode"])
        cache = CounterMetricFamily("semsearch_search_cache", "searches answered from the engine's answer "
                                    "cache (hit) or computed (miss)", labels=["result"])
        answers = CounterMetricFamily("semsearch_answers", "questions answered (given) or not (withheld, "
                                      "below the confidence threshold), by answer mode",
                                      labels=["mode", "result"])
        for key, n in sorted(counts.items()):
            if key[0] == "searches":
                searches.add_metric([key[1]], n)
            elif key[0] == "search_cache":
                cache.add_metric([key[1]], n)
            elif key[0] == "answers":
                answers.add_metric([key[1], key[2]], n)
        yield from (searches, cache, answers)

        try:
            info = engine.info()
        except Exception:  # no published generation: the gauges are left out, /health says why
            info = None
        if info is not None:
            generation = GaugeMetricFamily("semsearch_generation", "number of the published generation")
            generation.add_metric([], float(int(info["generation"])) if info["generation"].isdigit() else 0.0)
            yield generation
            yield GaugeMetricFamily("semsearch_documents", "documents in the published generation",
                                    value=info["documents"])
            yield GaugeMetricFamily("semsearch_passages", "passages in the published generation",
                                    value=info["passages"])

        watcher = getattr(self.app.state, "watcher", None)
        if watcher is not None:
            status = watcher.status
            syncs = CounterMetricFamily("semsearch_folder_syncs", "folder syncs by outcome (ok, locked: "
                                        "retried later, failed)", labels=["outcome"])
            for outcome, n in sorted(status.outcomes.items()):
                syncs.add_metric([outcome], n)
            yield syncs
            if status.last_sync_ts is not None:
                age = max(0.0, time.time() - status.last_sync_ts)
                yield GaugeMetricFamily("semsearch_folder_sync_age_seconds", "seconds since the last "
                                        "folder sync finished", value=age)
            yield GaugeMetricFamily("semsearch_folders_unavailable", "watched folders that are missing "
                                    "(their documents are kept)", value=len(status.unavailable))


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by the template of the route that took it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler is answered 500 by the server

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "GET")
            method = method if method in METHODS else "other"  # a client may send any token here
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
            if status == 429:
                self.metrics.rate_limited.labels(route).inc()


router = APIRouter(tags=["meta"])


@router.get("/metrics", dependencies=[Depends(read_access)], response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """Counters and gauges of this server for Prometheus (open unless SEMSEARCH_READS_NEED_KEY)."""
    return Response(request.app.state.metrics.expose(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> Metrics:
    """The registry, the request middleware and GET /metrics; the app's job queue reports to it."""
    found = Metrics()
    found.registry.register(StateCollector(app))
    app.state.metrics = found
    app.add_middleware(RequestMetrics, metrics=found)
    app.include_router(router)
    return found
