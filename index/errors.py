"""The one error table: every error a user can cause carries its code, HTTP status and CLI exit.

The HTTP handlers (`api.errors`), the background jobs (`api.jobs`) and the CLI (`api.cli`) all read an
error through `classify`, so a document that cannot be read is `unreadable_document` wherever it is met.
It lives in index/ because the index's own errors derive from it, and index/ imports nothing above it.

A status of 500 means "not the user's doing": the HTTP API and the jobs log it and answer a generic
message; the CLI still prints the message (it is the user's own machine) and exits 1.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_ERROR = 1  # the command failed; the message on stderr says why and what to do
EXIT_USAGE = 2  # the command line itself is wrong (argparse uses 2 as well)
# `semsearch index` finished and published, but some files (or JSONL lines) could not be read; what the
# index held from them was kept. Distinct from 1 (an error: nothing changed) and 2 (bad usage).
EXIT_SKIPPED = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class SemsearchError(Exception):
    """Base of every error semsearch raises on purpose; a subclass sets `code`, `status` and `exit`.

    Messages say what is wrong and what to do next.
    """

    code: str = "internal_error"
    status: int = 500
    exit: int = EXIT_ERROR
    headers: dict[str, str] | None = None


class ConfigError(SemsearchError, ValueError):
    """A setting (an environment variable or an option) is wrong; the message names it and how to fix it.

    Raised before the server starts or a command runs, so over HTTP it can only be a server fault.
    """

    code = "bad_setting"


@dataclass(frozen=True)
class ErrorInfo:
    """How one error is shown: over HTTP (`status`, `code`, `headers`), in a job and by the CLI (`exit`)."""

    code: str
    status: int
    exit: int
    message: str
    headers: dict[str, str] | None = None

    @property
    def unexpected(self) -> bool:
        """A 500: logged, and its message kept from HTTP clients."""
        return self.status == 500


INTERNAL_MESSAGE = "unexpected server error; the server log has the details"


def classify(exc: BaseException) -> ErrorInfo | None:
    """The table's entry for `exc`, or None for an error nobody raised on purpose (a bug: a traceback).

    An `OSError` (a missing file, a full disk, a refused connection) is the user's environment, not a
    bug: the CLI prints it in one line, while HTTP and jobs treat it as a 500.
    """
    if isinstance(exc, SemsearchError):
        return ErrorInfo(code=exc.code, status=exc.status, exit=exc.exit, message=str(exc),
                         headers=exc.headers)
    if isinstance(exc, OSError):
        return ErrorInfo(code="internal_error", status=500, exit=EXIT_ERROR, message=str(exc))
    if _is_milvus_error(exc):
        # The server went away or refused mid-command; a write publishes a generation whole or not at all.
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        return ErrorInfo(code="index_unavailable", status=503, exit=EXIT_ERROR,
                         message=f"Milvus failed: {first}. What was published is as it was; once Milvus "
                                 "answers again, run the same command again (a write converges)")
    return None


def _is_milvus_error(exc: BaseException) -> bool:
    """pymilvus's own errors and the gRPC errors it lets through, known by their class (pymilvus is an
    optional extra, so it is not imported here)."""
    return any(cls.__module__.split(".")[0] in ("pymilvus", "grpc") for cls in type(exc).__mro__)
