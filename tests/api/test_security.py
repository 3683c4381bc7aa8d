"""API keys, rate limits, body limits and CORS (`api.security`).

Settings and the limiter are checked in process (a fake clock, no model); the wiring of every route is
checked on the app itself with a stand-in engine; the behaviour as a client sees it against one live
server with a key file, closed reads, a low rate limit, a small body limit and one CORS origin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.security import (
    ConfigError,
    SecuritySettings,
    TokenBucketLimiter,
    api_routes,
    check_bind,
    host_allowed,
    is_loopback,
    load_api_key,
    max_body_from_env,
    origin_allowed,
    parse_size,
    route_guards,
)
from tests.api.conftest import ROOT, LiveServer, copy_index, start_server, stop_server, wait_for_job

KEY = "test-key-9f2c61d0a4b3e8f7c5d2a1b0"
ORIGIN = "https://news.example"
READ_POSTS = {"/similar", "/ask", "/search"}  # POST routes that only read
OPEN = {"/health", "/", "/docs"}  # liveness probes and the static pages stay open, whatever the settings


# --- settings --------------------------------------------------------------------------------------------
def test_key_from_env_or_file_never_shown(tmp_path: Path) -> None:
    assert load_api_key({}) is None
    assert load_api_key({"SEMSEARCH_API_KEY": f"  {KEY}\n"}) == KEY
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    assert load_api_key({"SEMSEARCH_API_KEY_FILE": str(key_file)}) == KEY
    assert load_api_key({"SEMSEARCH_API_KEY": KEY, "SEMSEARCH_API_KEY_FILE": "/nonexistent"}) == KEY
    (tmp_path / "empty").write_text("\n")
    for env, says in [({"SEMSEARCH_API_KEY_FILE": str(tmp_path / "missing")}, "cannot read"),
                      ({"SEMSEARCH_API_KEY_FILE": str(tmp_path / "empty")}, "empty"),
                      ({"SEMSEARCH_API_KEY": "short-key"}, "at least 16"),
                      ({"SEMSEARCH_API_KEY": "a key with spaces in it"}, "without spaces")]:
        with pytest.raises(ConfigError, match=says) as caught:
            load_api_key(env)
        assert "short-key" not in str(caught.value) and "spaces in it" not in str(caught.value)
    assert KEY not in repr(SecuritySettings(api_key=KEY))


def test_limits_and_origins_from_env() -> None:
    settings = SecuritySettings.from_env({"SEMSEARCH_RATE_LIMIT": "120", "SEMSEARCH_READS_NEED_KEY": "1",
                                          "SEMSEARCH_CORS_ORIGINS": f" {ORIGIN}/ , http://localhost:5173",
                                          "SEMSEARCH_MAX_BODY": "2MB"})
    assert settings.rate_limit == 120 and settings.burst == 12 and settings.reads_need_key
    assert settings.cors_origins == (ORIGIN, "http://localhost:5173")
    assert settings.max_body_bytes == 2 * 1024 * 1024
    defaults = SecuritySettings.from_env({})
    assert defaults.rate_limit == 600 and defaults.cors_origins == () and not defaults.reads_need_key
    assert defaults.max_body_bytes == 10 * 1024 * 1024
    assert parse_size("10485760") == parse_size("10MB") == parse_size("10 mib") == 10 * 1024 * 1024
    assert parse_size("512k") == 512 * 1024
    assert max_body_from_env({"SEMSEARCH_MAX_BODY_MB": "0.5"}) == 512 * 1024
    for env in ({"SEMSEARCH_RATE_LIMIT": "fast"}, {"SEMSEARCH_RATE_LIMIT": "-1"},
                {"SEMSEARCH_MAX_BODY": "ten"}, {"SEMSEARCH_READS_NEED_KEY": "maybe"}):
        with pytest.raises(ConfigError):
            SecuritySettings.from_env(env)


def test_only_loopback_may_serve_without_a_key() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_bind(host, SecuritySettings())
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.org", ""):
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match="without an API key"):
            check_bind(host, SecuritySettings())
        check_bind(host, SecuritySettings(api_key=KEY))


def test_token_bucket() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(60, 3, clock=lambda: now[0], max_clients=2)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)  # one a second: the next token in 1 s
    assert limiter.take("b") == 0.0, "clients have their own buckets"
    now[0] += 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    now[0] += 100
    assert [limiter.take("a") for _ in range(4)][-1] > 0, "the bucket never holds more than the burst"
    limiter.take("c")  # a third client: the least recently seen one ("b") is forgotten
    assert set(limiter._buckets) == {"a", "c"}  # noqa: SLF001 - the bound is the point


def test_hosts_and_origins_a_server_answers_to() -> None:
    """Addresses and localhost always; names only when served or listed; ports are not compared."""
    plain = SecuritySettings()
    for host in ("127.0.0.1:8000", "127.0.0.1", "[::1]:8000", "localhost:8000", "LOCALHOST.", "app.localhost",
                 "192.0.2.10:8000", "[2001:db8::1]", ""):
        assert host_allowed(host, plain), host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example"):
        assert not host_allowed(host, plain), host
    proxied = SecuritySettings.from_env({"SEMSEARCH_ALLOWED_HOSTS": "Search.Example.org:443, .corp.example"})
    assert proxied.allowed_hosts == ("search.example.org", ".corp.example")
    assert host_allowed("search.example.org", proxied) and host_allowed("a.corp.example:8000", proxied)
    assert host_allowed("corp.example", proxied) and not host_allowed("evilcorp.example", proxied)
    assert host_allowed("anything.example", SecuritySettings.from_env({"SEMSEARCH_ALLOWED_HOSTS": "*"}))
    served = plain.serving("search.lan")
    assert host_allowed("search.lan:8000", served) and plain.serving("0.0.0.0") == plain

    # the page's own origin is the Host it was sent to, with the port; 127.0.0.1 and localhost differ
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", plain)
    assert origin_allowed("http://[::1]:8000", "[::1]:8000", plain)
    assert origin_allowed("https://search.example.org", "search.example.org", plain), "TLS proxy, no port"
    for origin in ("http://127.0.0.1:3000", "http://localhost:8000", "http://evil.example", "null",
                   "http://127.0.0.1:8000.evil.example", "file://"):
        assert not origin_allowed(origin, "127.0.0.1:8000", plain), origin
    assert origin_allowed(ORIGIN, "127.0.0.1:8000", SecuritySettings(cors_origins=(ORIGIN,)))
    assert not origin_allowed("https://search.example.org:3000", "search.example.org", proxied), \
        "a listed name answers requests; it does not let a page on another port of it write"
    assert not origin_allowed("https://evil.example", "127.0.0.1:8000",
                              SecuritySettings(allowed_hosts=("*",))), "* opens the Host check, not writes"


# --- the wiring of every route ---------------------------------------------------------------------------
def _app(settings: SecuritySettings) -> Any:
    """The real app with a stand-in engine: enough for routing, dependencies and the schema."""
    from api.server import create_app

    return create_app(engine=SimpleNamespace(embedder=None), security=settings)  # type: ignore[arg-type]


def _client(settings: SecuritySettings, client: tuple[str, int] = ("127.0.0.1", 50000)) -> TestClient:
    """A TestClient that talks to the app as a local client of http://127.0.0.1:8000 would."""
    return TestClient(_app(settings), base_url="http://127.0.0.1:8000", client=client)


def test_every_write_route_needs_the_key_and_reads_are_guarded() -> None:
    """A new route that changes the index must not be left open by mistake."""
    app = _app(SecuritySettings(api_key=KEY))
    seen = set()
    for route in api_routes(app):
        guards = route_guards(route)
        for method in route.methods:
            seen.add((method, route.path))
            if method in ("GET", "HEAD") and not route.path.startswith("/jobs"):
                if route.path not in OPEN:
                    assert "read" in guards, f"{method} {route.path} has no read_access"
            elif route.path not in READ_POSTS:
                assert "write" in guards, f"{method} {route.path} changes the index without write_access"
            if route.path in READ_POSTS:
                assert "rate" in guards, f"{route.path} is not rate limited"
    assert {("POST", "/documents"), ("DELETE", "/documents/{doc_id:path}"), ("GET", "/jobs/{job_id}")} <= seen
    assert all(isinstance(getattr(r, "original_route", r), APIRoute) for r in api_routes(app))


def test_schema_declares_what_the_server_enforces() -> None:
    with _client(SecuritySettings(api_key=KEY)) as client:
        schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    post = schema["paths"]["/documents"]["post"]
    assert post["security"] == [{"bearerAuth": []}] and {"401", "403", "413"} <= set(post["responses"])
    assert "security" not in schema["paths"]["/search"]["get"], "reads are open by default"
    assert "429" in schema["paths"]["/search"]["get"]["responses"]
    with _client(SecuritySettings()) as client:
        open_schema = client.get("/openapi.json").json()
    assert "security" not in open_schema["paths"]["/documents"]["post"], "no key configured, none required"


def test_without_a_key_writes_come_only_from_loopback() -> None:
    """A server started without `semsearch serve` (uvicorn --host 0.0.0.0) is still closed to writes."""
    with _client(SecuritySettings(), client=("192.0.2.10", 50000)) as client:
        response = client.post("/documents", json={"documents": [{"text": "正文"}]})
        assert response.status_code == 403 and response.json()["error"]["code"] == "writes_closed"
        assert client.delete("/documents/x").status_code == 403


def test_browsers_on_other_sites_cannot_write_whatever_the_key() -> None:
    """A form post from a foreign page is a simple request (no preflight): it is refused before it runs."""
    doc = {"documents": [{"doc_id": "csrf.txt", "text": "外站写入。"}]}
    for settings, auth in [(SecuritySettings(), {}), (SecuritySettings(api_key=KEY), bearer())]:
        with _client(settings) as client:
            for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
                            {"origin": "http://127.0.0.1:3000", "sec-fetch-site": "same-site"},
                            {"origin": "null"}):
                response = client.post("/documents", json=doc, headers={**auth, **headers})
                assert response.status_code == 403, (headers, response.text)
                assert response.json()["error"]["code"] == "cross_site_write"
                assert "SEMSEARCH_CORS_ORIGINS" in response.json()["error"]["message"]
                assert client.delete("/documents/x", headers={**auth, **headers}).status_code == 403
            # a foreign name (DNS rebinding) gets nothing at all, reads included
            for method, path in [("POST", "/documents"), ("GET", "/search?q=x"), ("GET", "/health")]:
                foreign = {**auth, "host": "evil.example:8000"}
                response = client.request(method, path, json=doc, headers=foreign)
                assert response.status_code == 400 and response.json()["error"]["code"] == "host_not_allowed"
                assert "SEMSEARCH_ALLOWED_HOSTS" in response.json()["error"]["message"]
    with _client(SecuritySettings(cors_origins=(ORIGIN,))) as client:
        listed = client.post("/documents", json={"documents": [{"text": "x"}]},
                             headers={"origin": ORIGIN, "sec-fetch-site": "cross-site"})
        assert listed.status_code != 403, "an origin of SEMSEARCH_CORS_ORIGINS may write"


def test_cors_is_off_unless_configured() -> None:
    preflight = {"origin": ORIGIN, "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization, content-type"}
    with _client(SecuritySettings()) as client:
        response = client.options("/similar", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-origin" not in client.get("/nope", headers={"origin": ORIGIN}).headers
    with _client(SecuritySettings(cors_origins=(ORIGIN,))) as client:
        response = client.options("/similar", headers=preflight)
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in response.headers["access-control-allow-headers"].lower()
        refused = client.options("/similar", headers={**preflight, "origin": "https://evil.example"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "cors_refused"
        assert "access-control-allow-origin" not in refused.headers
        simple = client.get("/nope", headers={"origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in simple.headers


# --- the CLI -----------------------------------------------------------------------------------------------
def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_")} | env
    return subprocess.run([sys.executable, "-m", "api.cli", "serve", *args], capture_output=True, text=True,
                          env=environ, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_serve_refuses_a_public_address_without_a_key(host: str, tmp_path: Path) -> None:
    out = _serve("--host", host, "--index", str(tmp_path), env={})
    assert out.returncode == 1 and "refusing to serve" in out.stderr and "SEMSEARCH_API_KEY" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_serve_reports_bad_settings_in_one_line(tmp_path: Path) -> None:
    out = _serve("--index", str(tmp_path), env={"SEMSEARCH_RATE_LIMIT": "lots"})
    assert out.returncode == 1 and "SEMSEARCH_RATE_LIMIT" in out.stderr and "Traceback" not in out.stderr
    out = _serve("--index", str(tmp_path), env={"SEMSEARCH_API_KEY_FILE": str(tmp_path / "none")})
    assert out.returncode == 1 and "cannot read" in out.stderr and "Traceback" not in out.stderr


# --- a live server with everything on --------------------------------------------------------------------
@pytest.fixture(scope="module")
def locked(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("locked")
    key_file = folder / "api.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    env = {"SEMSEARCH_API_KEY_FILE": str(key_file), "SEMSEARCH_READS_NEED_KEY": "1",
           "SEMSEARCH_RATE_LIMIT": "60", "SEMSEARCH_RATE_BURST": "5", "SEMSEARCH_CORS_ORIGINS": ORIGIN,
           "SEMSEARCH_MAX_BODY": "64KB", "SEMSEARCH_API_KEY": ""}
    live = start_server(copy_index(seed_index, folder), folder / "server.log", env)
    try:
        yield live
    finally:
        stop_server(live)


def bearer(key: str = KEY, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "unauthorized" and body["error"]["message"]
    assert KEY not in response.text


def test_live_keys(locked: LiveServer) -> None:
    with locked.client() as client:
        assert client.get("/health").status_code == 200, "health stays open for probes"
        assert client.get("/").status_code == 200, "the page itself is static"
        # reads are closed by SEMSEARCH_READS_NEED_KEY; each from its own address (the rate limit)
        for i, (method, path, kwargs) in enumerate([
            ("GET", "/search", {"params": {"q": "创新"}}), ("GET", "/documents", {}),
            ("GET", "/facets", {}), ("POST", "/similar", {"json": {"text": "创新"}}),
        ]):
            ip = {"X-Forwarded-For": f"192.0.2.{100 + i}"}
            assert_unauthorized(client.request(method, path, headers=ip, **kwargs))
            assert_unauthorized(client.request(method, path, headers=bearer("x" * 30, **ip), **kwargs))
            assert client.request(method, path, headers=bearer(**ip), **kwargs).status_code == 200
        assert_unauthorized(client.get("/search", params={"q": "创新"},
                                       headers={"Authorization": KEY, "X-Forwarded-For": "192.0.2.120"}))

        doc = {"documents": [{"doc_id": "sec/one.txt", "text": "密钥保护的写入。"}]}
        assert_unauthorized(client.post("/documents", json=doc))
        assert_unauthorized(client.post("/documents", json=doc, headers=bearer(KEY[:-1] + "x")))
        assert_unauthorized(client.post("/documents", json=doc, headers=bearer(KEY + "x")))
        added = client.post("/documents", json=doc, headers=bearer())
        assert added.status_code == 202, added.text
        job = added.json()["job"]
        assert_unauthorized(client.get(f"/jobs/{job}"))
        with locked.client(headers=bearer()) as keyed:
            assert wait_for_job(keyed, job)["state"] == "done"
            assert_unauthorized(client.delete("/documents/sec/one.txt"))
            assert keyed.delete("/documents/sec/one.txt", params={"wait": 60}).json()["state"] == "done"


def test_live_rate_limit_by_address_and_by_key(locked: LiveServer) -> None:
    with locked.client() as client:
        # an address without a key: five requests (the burst), then 429 with Retry-After
        ip = {"X-Forwarded-For": "198.51.100.7"}
        statuses = [client.get("/search", params={"q": "创新"}, headers=ip) for _ in range(7)]
        assert [r.status_code for r in statuses[:5]] == [401] * 5, "failed keys count against the address"
        limited = statuses[5]
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        wait = int(limited.headers["retry-after"])
        assert 1 <= wait <= 2
        # another address is not affected, and neither is the key sent from the limited one
        assert client.get("/search", params={"q": "创新"}, headers={"X-Forwarded-For": "198.51.100.8"}
                          ).status_code == 401
        keyed = [client.get("/search", params={"q": "创新"}, headers=bearer(**ip)).status_code
                 for _ in range(12)]
        assert keyed[0] == 200 and 429 in keyed, keyed
        time.sleep(wait + 0.2)
        assert client.get("/search", params={"q": "创新"}, headers=bearer(**ip)).status_code == 200
        # other routes are not rate limited
        assert all(client.get("/health").status_code == 200 for _ in range(8))


def test_live_body_limit_and_cors(locked: LiveServer) -> None:
    with locked.client() as client:
        assert client.get("/health").json()["max_body_bytes"] == 64 * 1024
        big = {"file": ("big.txt", b"a" * (64 * 1024 + 1), "text/plain")}
        response = client.post("/documents", files=big, headers=bearer())
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"[" * 8192

    with locked.client() as client:  # a fresh connection: the server closes one after a 413
        response = client.post("/documents", content=chunks(), headers=bearer(**{"content-type":
                                                                                "application/json"}))
        assert response.status_code == 413
    with locked.client() as client:
        ok = client.get("/documents", headers=bearer(origin=ORIGIN))
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        other = client.get("/documents", headers=bearer(origin="https://evil.example"))
        assert "access-control-allow-origin" not in other.headers


def test_live_key_never_in_the_log(locked: LiveServer) -> None:
    """Runs last in this module: after every request above sent the key (right, wrong and cut), and
    these put a key in the URL, where it is refused and must not be logged either."""
    with locked.client() as client:
        for params in ({"q": "创新", "api_key": KEY}, {"q": "创新", "token": "other-secret-7d1e3b9a"},
                       {"q": KEY}):
            refused = client.get("/search", params=params, headers={"X-Forwarded-For": "192.0.2.99"})
            assert_unauthorized(refused)
            assert ("key in the URL is not accepted" in refused.text) == (len(params) > 1)
    log = locked.log.read_text(errors="replace")
    assert '"POST /documents HTTP/1.1" 401' in log, "the access log is on and was read"
    assert "api_key=***" in log and "token=***" in log, "the URLs are logged, their secrets blanked"
    assert "other-secret" not in log
    assert KEY not in log and KEY[:12] not in log and "authorization" not in log.lower()
