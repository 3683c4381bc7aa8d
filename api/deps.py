"""Dependencies shared by the routers: the one engine and the one index writer of this process."""

from __future__ import annotations

from fastapi import Request

from api.jobs import JobQueue
from search.engine import Engine


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_jobs(request: Request) -> JobQueue:
    return request.app.state.jobs
