"""Who may do what, how often, and how much: API keys, rate limits, body limits and CORS.

Configuration comes from the environment, read once when the app is made: SEMSEARCH_API_KEY (or
SEMSEARCH_API_KEY_FILE), SEMSEARCH_READS_NEED_KEY, SEMSEARCH_RATE_LIMIT, SEMSEARCH_RATE_BURST,
SEMSEARCH_MAX_BODY, SEMSEARCH_CORS_ORIGINS and SEMSEARCH_ALLOWED_HOSTS; their types, defaults and meaning
are rows of the one settings table (`index.settings`).

Writes (`POST`/`DELETE /documents`, `/jobs`, any future re-index route) need `Authorization: Bearer KEY`
whenever a key is configured. Without a key, writes are accepted only from this machine: a loopback
connection, sent to a loopback address or `localhost`, and carrying none of the headers a reverse proxy
adds (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`, `Via` …). A server started some other way than
`semsearch serve` (e.g. `uvicorn --host 0.0.0.0`) is still closed to writes from other machines, and so
is one behind a proxy on the same machine, whose connections all come from 127.0.0.1. (A proxy that adds
no such header and rewrites `Host` to 127.0.0.1 cannot be told from a local client: behind a proxy, set a
key.) `semsearch serve` itself refuses a non-loopback host without a key.

Browsers are kept out of writes whatever the key setting. A web page the operator opens can send a form
post (a "simple" request, no preflight) to the server on 127.0.0.1, and a page on a DNS-rebound name
(evil.example resolving to 127.0.0.1) is even same-origin to the browser. So:

- every request, reads too, must name a host the server answers to (`Host`): an IP address (a rebinding
  attack needs a name it controls, never an address), `localhost` or `*.localhost`, the --host served,
  this machine's host name, or one in SEMSEARCH_ALLOWED_HOSTS; else 400 `host_not_allowed`. Reads are
  checked too because a rebound page could otherwise read every document of a private index. The port
  is not compared: a rebound name cannot reach another port than the one the attacker names, and port
  forwarding (ssh -L, containers) legitimately changes it.
- writes refuse a browser request from another site: an `Origin` other than the server's own (the
  `Host` it was sent to, port included) or one of SEMSEARCH_CORS_ORIGINS, or `Sec-Fetch-Site:
  cross-site`/`same-site` without such an origin: 403 `cross_site_write`. Clients that
  are not browsers (curl, httpx) send neither header and are not affected; the page's own requests are
  same-origin.

The key is compared in constant time (`hmac.compare_digest`) and never logged or echoed; uvicorn's
access log records method, path and status, never headers, and `install_log_redaction` replaces the
values of secret-looking query parameters (`api_key=`, `token=` …) and the key itself in its lines, for
a client that puts the key in the URL (it is refused there: the key goes in the Authorization header).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import DEFAULT_MAX_BODY_BYTES, ApiError, error
from index import settings
from index.errors import ConfigError

# a minute: ten a second, far above what one person at the page sends
DEFAULT_RATE_LIMIT: int = settings.default("SEMSEARCH_RATE_LIMIT")
MIN_KEY_CHARS = 16  # a short key can be guessed; `secrets.token_urlsafe(32)` gives 43 characters
MAX_TRACKED_CLIENTS = 10_000  # buckets kept; the least recently seen client is forgotten first
KEY_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


# --- settings ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SecuritySettings:
    """What the server enforces; `from_env` for the real server, the constructor for tests."""

    api_key: str | None = field(default=None, repr=False)  # repr=False: never in a log or traceback
    reads_need_key: bool = False
    rate_limit: int = DEFAULT_RATE_LIMIT  # requests a minute per client; 0 = no limit
    rate_burst: int | None = None  # None: rate_limit // 10 (at least 1)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: tuple[str, ...] = ()
    # names served besides addresses and localhost; "*": any, ".x.org": x.org and the names below it
    allowed_hosts: tuple[str, ...] = ()

    @property
    def burst(self) -> int:
        return self.rate_burst if self.rate_burst is not None else max(1, self.rate_limit // 10)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecuritySettings:
        env = os.environ if environ is None else environ
        rate = _int_setting(env, "SEMSEARCH_RATE_LIMIT", DEFAULT_RATE_LIMIT)
        burst = env.get("SEMSEARCH_RATE_BURST")
        return cls(
            api_key=load_api_key(env),
            reads_need_key=_flag(env, "SEMSEARCH_READS_NEED_KEY"),
            rate_limit=rate,
            rate_burst=_int_setting(env, "SEMSEARCH_RATE_BURST", 1) if burst else None,
            max_body_bytes=max_body_from_env(env),
            cors_origins=tuple(o.rstrip("/") for o in settings.value("SEMSEARCH_CORS_ORIGINS", env)),
            allowed_hosts=tuple(_host_name(h) if h != "*" else "*"
                                for h in settings.value("SEMSEARCH_ALLOWED_HOSTS", env)),
        )

    def serving(self, host: str) -> SecuritySettings:
        """These settings for a server on `host` (`semsearch serve --host`): a name served is allowed."""
        name = _host_name(host)
        if not name or _is_address(name) or name in self.allowed_hosts:
            return self
        return replace(self, allowed_hosts=(*self.allowed_hosts, name))


def _flag(env: Mapping[str, str], name: str) -> bool:
    return bool(settings.value(name, env))


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    number = settings.value(name, env)
    return default if number is None else int(number)


def parse_size(value: str, name: str = "SEMSEARCH_MAX_BODY") -> int:
    """Bytes of "10485760", "10MB", "10M", "512k", "1.5GiB" (units of 1024)."""
    return settings.size(name, value)


def max_body_from_env(environ: Mapping[str, str] | None = None) -> int:
    """`SEMSEARCH_MAX_BODY` (bytes or with a unit), else `SEMSEARCH_MAX_BODY_MB`, else 10 MB."""
    env = os.environ if environ is None else environ
    if settings.is_set("SEMSEARCH_MAX_BODY", env):
        return int(settings.value("SEMSEARCH_MAX_BODY", env))
    if settings.is_set("SEMSEARCH_MAX_BODY_MB", env):
        return parse_size(env["SEMSEARCH_MAX_BODY_MB"].strip() + "M", "SEMSEARCH_MAX_BODY_MB")
    return DEFAULT_MAX_BODY_BYTES


def load_api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The configured key: `SEMSEARCH_API_KEY`, else the contents of `SEMSEARCH_API_KEY_FILE`, else None."""
    env = os.environ if environ is None else environ
    key = env.get("SEMSEARCH_API_KEY", "").strip()
    source = "SEMSEARCH_API_KEY"
    if not key and (path := env.get("SEMSEARCH_API_KEY_FILE", "").strip()):
        source = f"the key file {path} (SEMSEARCH_API_KEY_FILE)"
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"cannot read {source}: {reason}") from None
        if not key:
            raise ConfigError(f"{source} is empty; {KEY_HINT}")
    if not key:
        return None
    if len(key) < MIN_KEY_CHARS or any(c.isspace() or not c.isprintable() for c in key):
        # the message never shows the key itself
        raise ConfigError(f"the API key from {source} must be at least {MIN_KEY_CHARS} printable characters "
                          f"without spaces; {KEY_HINT}")
    return key


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; anything else (0.0.0.0, a name, a LAN address) is not."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: assume it is reachable from outside


def check_bind(host: str, settings: SecuritySettings) -> None:
    """Refuse to serve on a non-loopback address without a key: anyone there could change the index."""
    if settings.api_key is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without an API key: anyone who can reach that address could add "
            "and delete documents. Set SEMSEARCH_API_KEY (or SEMSEARCH_API_KEY_FILE) to a secret key, "
            f"or serve on 127.0.0.1 only; {KEY_HINT}"
        )


# --- Host and Origin: no foreign web page, no rebound name --------------------------------------------
def _host_name(value: str) -> str:
    """The name of a Host header or origin authority, lower case, without port or final dot."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _listed(name: str, allowed: tuple[str, ...]) -> bool:
    return any(a == "*" or a == name or (a.startswith(".") and (name == a[1:] or name.endswith(a)))
               for a in allowed)


def host_allowed(host: str, settings: SecuritySettings) -> bool:
    """May a request sent to `host` (its Host header) be answered? See the module's docstring for why."""
    name = _host_name(host)
    return (not name or _is_address(name) or name == "localhost" or name.endswith(".localhost")
            or name == socket.gethostname().lower() or _listed(name, settings.allowed_hosts))


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an Origin header, the port made explicit; None for "null" or garbage."""
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or not authority or "/" in authority:
        return None
    name = _host_name(authority)
    port_text = authority.rpartition("]")[2] if authority.startswith("[") else authority
    port = port_text.rpartition(":")[2] if ":" in port_text else ""
    if port and not port.isdigit():
        return None
    return scheme, name, int(port) if port else (443 if scheme == "https" else 80)


def origin_allowed(origin: str, host: str, settings: SecuritySettings) -> bool:
    """Is `origin` the server itself (the Host it was sent to, port included) or a CORS origin?

    A name of SEMSEARCH_ALLOWED_HOSTS is not an origin: it would let a page on any port of that name write.
    """
    if origin.strip().rstrip("/") in settings.cors_origins:
        return True
    parts = _origin_parts(origin)
    if parts is None:
        return False
    scheme, name, port = parts
    # the Host header has no scheme: its port defaults to the origin's (a TLS proxy sends "name" alone)
    host_port = host.strip().rpartition("]")[2] if host.strip().startswith("[") else host.strip()
    explicit = host_port.rpartition(":")[2] if ":" in host_port else ""
    default = 443 if scheme == "https" else 80
    return name == _host_name(host) and port == (int(explicit) if explicit.isdigit() else default)


def _foreign_host(host: str) -> ApiError:
    return ApiError("host_not_allowed",
                    f"this server does not answer to the host name {_host_name(host)!r} (a page on a name "
                    "pointed at this machine could use it to read and change the index); use its address "
                    "or localhost, or add the name to the server's SEMSEARCH_ALLOWED_HOSTS")


class HostGuard:
    """ASGI middleware: answer 400 `host_not_allowed` to a request whose Host the server does not serve."""

    def __init__(self, app: ASGIApp, settings: SecuritySettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            if not host_allowed(host, self.settings):
                refusal = _foreign_host(host)
                await error(refusal.status, refusal.code, refusal.message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def check_same_site(request: Request) -> None:
    """Refuse a write a browser sends from another site (a form post or fetch of a foreign page)."""
    settings = _settings(request)
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site", "").strip().lower()
    if origin is not None and not origin_allowed(origin, host, settings):
        who = f"the page at {origin.strip()[:200]}"
    elif site in ("cross-site", "same-site") and origin is None:  # an allowed Origin was let through above
        who = f"a page of another site (Sec-Fetch-Site: {site})"
    else:
        return
    raise ApiError("cross_site_write",
                   f"writes from {who} are refused: only the server's own page and clients that are not "
                   "browsers may change the index; list a trusted page's origin in the server's "
                   "SEMSEARCH_CORS_ORIGINS")


# --- rate limiting -----------------------------------------------------------------------------------
class TokenBucketLimiter:
    """Per-client token buckets: `burst` requests at once, then `per_minute / 60` a second.

    Buckets live in an LRU of at most `max_clients`, so a flood of client addresses costs bounded memory
    (a forgotten client simply starts again with a full bucket).
    """

    def __init__(self, per_minute: int, burst: int, *, max_clients: int = MAX_TRACKED_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)
        self._max = max_clients
        self._lock = threading.Lock()  # sync routes' dependencies run in a thread pool

    def take(self, client: str) -> float:
        """0.0 if the request may go ahead (a token is spent), else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, when = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - when) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait


# --- the checks (FastAPI dependencies) -----------------------------------------------------------------
def _settings(request: Request) -> SecuritySettings:
    return getattr(request.app.state, "security", None) or SecuritySettings()


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _key_matches(token: str | None, key: str | None) -> bool:
    if token is None or key is None:
        return False
    # headers arrive latin-1 decoded: encoding back gives the bytes the client sent
    return hmac.compare_digest(token.encode("latin-1", "replace"), key.encode("utf-8"))


def _unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = 'Bearer realm="semsearch"' + (f', error="{error}"' if error else "")
    return ApiError("unauthorized", message, {"WWW-Authenticate": challenge})


def _check(request: Request, what: str) -> None:
    settings = _settings(request)
    token = _bearer(request)
    if settings.api_key is None:
        return
    if token is None:
        in_url = any(SECRET_PARAMETER.search("?" + name + "=") for name in request.query_params)
        raise _unauthorized(f"{what} need an API key: send the header 'Authorization: Bearer <key>' "
                            "(the server's SEMSEARCH_API_KEY)"
                            + ("; a key in the URL is not accepted (URLs end up in logs and histories)"
                               if in_url else ""))
    if not _key_matches(token, settings.api_key):
        raise _unauthorized("the API key is not right", "invalid_token")


# Headers a reverse proxy adds: a request with one was sent by someone else, whatever address it came from.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip",
                      "via")


def _from_this_machine(request: Request) -> bool:
    """A loopback connection, sent to a loopback name, that no proxy forwarded (see the module docstring)."""
    server = request.scope.get("server")
    client = request.scope.get("client")
    if not (server and is_loopback(str(server[0])) and client and is_loopback(str(client[0]))):
        return False
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    host = _host_name(request.headers.get("host", ""))
    return not host or is_loopback(host) or host.endswith(".localhost")


async def write_access(request: Request) -> None:
    """Writes need the key when one is configured; without one, only requests from this machine may write.
    Either way, never from a browser on another site."""
    check_same_site(request)
    if _settings(request).api_key is None and not _from_this_machine(request):
        raise ApiError("writes_closed",
                       "this server has no API key, so it takes writes only from its own machine (sent to "
                       "127.0.0.1 or localhost, not through a proxy); set SEMSEARCH_API_KEY on the server "
                       "and send 'Authorization: Bearer <key>'")
    _check(request, "writes")


async def read_access(request: Request) -> None:
    """Reads are open unless SEMSEARCH_READS_NEED_KEY is set (and a key is configured)."""
    if _settings(request).reads_need_key:
        _check(request, "reads")


def client_id(request: Request) -> str:
    """Who a rate limit applies to: the key when a valid one is sent, else the client's address.

    Only a valid key gets its own bucket: keying on any token sent would let a client escape the limit
    by sending a new made-up token with each request.
    """
    settings = _settings(request)
    token = _bearer(request)
    if _key_matches(token, settings.api_key):
        return "key:" + hashlib.sha256((token or "").encode("latin-1", "replace")).hexdigest()[:16]
    client = request.scope.get("client")
    return "ip:" + (str(client[0]) if client else "unknown")


async def rate_limit(request: Request) -> None:
    """429 with Retry-After once a client is over SEMSEARCH_RATE_LIMIT requests a minute."""
    limiter: TokenBucketLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    wait = limiter.take(client_id(request))
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError("rate_limited",
                       f"too many requests: at most {limiter.per_minute} a minute for each client "
                       f"(the server's SEMSEARCH_RATE_LIMIT); retry in {seconds} s",
                       {"Retry-After": str(seconds)})


# --- secrets out of the access log ---------------------------------------------------------------------
SECRET_PARAMETER = re.compile(r"(?i)([?&](?:[^=&#]*(?:key|token|secret|password|passwd|auth|credential|"
                              r"signature)[^=&#]*)=)[^&#]*")


class RedactSecrets(logging.Filter):
    """Blank the values of secret-looking query parameters, and the key wherever it appears, in uvicorn's
    access log lines: a client that puts the key in the URL (`?api_key=…`) is refused, and must not leave
    the key in the log either."""

    def __init__(self, key: str | None) -> None:
        super().__init__()
        self.key = key

    def redact(self, text: str) -> str:
        text = SECRET_PARAMETER.sub(r"\1***", text)
        if self.key:
            for form in {self.key, quote(self.key, safe=""), quote_plus(self.key)}:
                text = text.replace(form, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        return True


def install_log_redaction(settings: SecuritySettings, logger_name: str = "uvicorn.access") -> None:
    """One RedactSecrets on uvicorn's access logger (uvicorn's logging set-up keeps a logger's filters)."""
    logger = logging.getLogger(logger_name)
    for old in [f for f in logger.filters if isinstance(f, RedactSecrets)]:
        logger.removeFilter(old)
    logger.addFilter(RedactSecrets(settings.api_key))


# --- installing ----------------------------------------------------------------------------------------
class ShapedCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the API's error shape, not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        what = bytes(response.body).decode("latin-1").removeprefix("Disallowed CORS ")
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}
        return error(400, "cors_refused", f"cross-origin request refused ({what}); the server's "
                     "SEMSEARCH_CORS_ORIGINS lists the origins allowed", headers)


def install_security(app: FastAPI, settings: SecuritySettings) -> None:
    """Settings and limiter on app.state; CORS only when origins are configured."""
    app.state.security = settings
    install_log_redaction(settings)
    app.state.rate_limiter = (TokenBucketLimiter(settings.rate_limit, settings.burst)
                              if settings.rate_limit > 0 else None)
    if settings.cors_origins:
        app.add_middleware(
            ShapedCORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "Location"],
            allow_credentials=False,  # the key travels in a header set by the caller, never in a cookie
            max_age=600,
        )
    app.add_middleware(HostGuard, settings=settings)  # outermost: a foreign Host gets nothing, not even CORS


def api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes as served, with the dependencies of the routers that include them."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers were kept nested: the routes are flat
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def route_guards(route: Any) -> set[str]:
    """Which of write_access, read_access and rate_limit a route depends on (for OpenAPI and tests)."""
    names = {write_access: "write", read_access: "read", rate_limit: "rate"}
    found: set[str] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call in names:
            found.add(names[dep.call])
        stack.extend(dep.dependencies)
    return found


def security_openapi(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """Declare the bearer scheme, where it is required, and the 400/401/403/413/429 answers in the schema.

    The security requirement follows the running configuration (a server without a key requires none),
    so a client generated from /openapi.json, or a fuzzer, sees what this server really enforces.
    """
    settings: SecuritySettings = getattr(app.state, "security", None) or SecuritySettings()
    shape = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http", "scheme": "bearer", "description": "the server's SEMSEARCH_API_KEY"}
    paths = schema.get("paths", {})
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        guards = route_guards(route)
        for method in route.methods or ():
            op = paths.get(route.path_format, {}).get(method.lower())
            if not isinstance(op, dict):
                continue
            answers = op.setdefault("responses", {})
            needs_key = settings.api_key is not None and (
                "write" in guards or ("read" in guards and settings.reads_need_key))
            if "write" in guards or "read" in guards:
                answers.setdefault("401", {"description": "no API key, or a wrong one", **shape})
            if "write" in guards:
                answers.setdefault("403", {"description": "a browser page of another site (Origin, "
                                                          "Sec-Fetch-Site), or no key configured and not a "
                                                          "loopback connection", **shape})
            if needs_key:
                op["security"] = [{"bearerAuth": []}]
            if "rate" in guards:
                answers.setdefault("429", {"description": "over the rate limit; see Retry-After", **shape})
            if "requestBody" in op:
                answers.setdefault("413", {"description": "body over the size limit", **shape})
            if op.get("parameters") or "requestBody" in op:
                # api.errors answers a parameter or body of the wrong type or range with 400, on every route
                answers.setdefault("400", {"description": "bad query or parameter", **shape})
    return schema
