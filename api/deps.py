"""Dependencies shared by the routers: the one engine and the one index writer of this process."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.errors import ApiError
from api.jobs import JobQueue
from search.engine import Engine

_DECLARED: dict[int, tuple[str, ...]] = {}  # id(route) -> the names of its query parameters


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
    declared = _DECLARED.get(id(route))
    if declared is None:
        declared = _DECLARED[id(route)] = tuple(dict.fromkeys(_query_parameters(dependant)))
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
