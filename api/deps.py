"""Dependencies shared by the routers: the one engine and the one index writer of this process."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.errors import ApiError
from api.jobs import JobQueue
from search.engine import Engine

# The names of a route's query parameters, kept on the route (a route is made once per app).
_DECLARED = "_semsearch_query_parameters"


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


def declared_parameters_only(request: Request) -> None:
    """Refuse a query parameter the route does not have: a misspelt filter (`docid=`) ignored would
    answer unfiltered as if filtered, a misspelt `limit` with a page of another size."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    declared: tuple[str, ...] | None = getattr(route, _DECLARED, None)
    if declared is None:
        declared = tuple(dict.fromkeys(_query_parameters(dependant)))
        setattr(route, _DECLARED, declared)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in declared]
    if unknown:
        listed = ", ".join(declared) if declared else "none"
        raise ApiError("bad_request", f"{', '.join(unknown)}: not a parameter of {request.method} "
                       f"{getattr(route, 'path', request.url.path)} (its parameters: {listed}; see /docs)")


def _query_parameters(dependant: Any) -> list[str]:
    """The query parameter names of a route's dependant and of its dependencies'."""
    names = [field.alias for field in dependant.query_params]
    for sub in dependant.dependencies:
        names += _query_parameters(sub)
    return names
