"""Schemathesis against the live server's own OpenAPI schema: no 5xx, and every answer as declared.

Every operation of /openapi.json is called with generated input (valid and invalid), each case twice:
without a key and with the server's key. Checked on every answer: not a server error, a status code the
schema declares, the declared content type, a body matching the declared schema, declared headers;
with the key, also that the operations requiring it refuse a request without it (`ignored_auth`).

A short budget here (`FUZZ_EXAMPLES` cases an operation, 15 by default, a fifth of that for /ask, whose
answers take seconds each); `bench/fuzz.py` runs the same with a long one and writes the figures into
docs/reliability.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402 - after the skip
from schemathesis import checks as st_checks  # noqa: E402
from schemathesis.specs.openapi import checks as oa_checks  # noqa: E402

from tests.api.conftest import LiveServer, copy_index, start_server, stop_server  # noqa: E402

KEY = "fuzz-key-3c8e1f27b9d04a6e5f1a2b3c"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 15)
ASK_EXAMPLES = max(1, EXAMPLES // 5)
CHECKS = [
    st_checks.not_a_server_error,
    oa_checks.status_code_conformance,
    oa_checks.content_type_conformance,
    oa_checks.response_schema_conformance,
    oa_checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with a key (writes need it, reads are open) on its own copy of the index."""
    folder = tmp_path_factory.mktemp("fuzz")
    env = {"SEMSEARCH_API_KEY": KEY, "SEMSEARCH_RATE_LIMIT": "0", "SEMSEARCH_MAX_BODY": "1MB"}
    live = start_server(copy_index(seed_index, folder), folder / "server.log", env)
    try:
        yield live
    finally:
        stop_server(live)


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> Any:
    # the first answer loads the answer extractor's tagger: not part of any case's time
    httpx.post(f"{fuzz_server.url}/ask", json={"question": "长三角研发投入强度的目标"}, timeout=600)
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def call_and_check(case: Any, base_url: str) -> list[int]:
    """The case without and with the key; the statuses."""
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 5:
        case.query["wait"] = 5  # the job runs either way; waiting minutes for it tests nothing more
    statuses = []
    for headers in ({}, {"Authorization": f"Bearer {KEY}"}):
        extra = [oa_checks.ignored_auth] if headers else []
        response = case.call(base_url=base_url, headers=headers, timeout=300)
        case.validate_response(response, checks=CHECKS + extra, headers=headers)
        statuses.append(response.status_code)
    return statuses


@schema.exclude(path="/ask").parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Any, fuzz_server: LiveServer) -> None:
    call_and_check(case, fuzz_server.url)


@schema.include(path="/ask").parametrize()
@settings(max_examples=ASK_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_ask_conforms_to_its_schema(case: Any, fuzz_server: LiveServer) -> None:
    """Fewer cases: an extracted answer takes seconds on a busy two-core machine."""
    call_and_check(case, fuzz_server.url)


def test_no_server_error_was_logged(fuzz_server: LiveServer) -> None:
    """Runs after the fuzzing: the server's own log has no 500 and no traceback either."""
    log = fuzz_server.log.read_text(errors="replace")
    assert " 500 " not in log and "Traceback" not in log, fuzz_server.log_tail(80)
