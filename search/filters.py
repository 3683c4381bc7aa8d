"""Parse and check user filters (CLI flags, query parameters, JSON bodies)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from index.analysis import normalize
from index.repair import collapse_whitespace
from index.stores.passages import Filters
from search.errors import QueryError


def check_date(value: str | None, name: str) -> str | None:
    """A filter date must be ISO `YYYY-MM-DD` (a year or year-month is widened to its first day)."""
    if value is None or value == "":
        return None
    text = value.strip()
    for fmt, width in (("%Y-%m-%d", 10), ("%Y-%m", 7), ("%Y", 4)):
        try:
            day = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if len(text) == width:
            return day.isoformat()
    raise QueryError(f"{name} must be a date like 2021-11-29, not {value!r}")


def parse_filters(
    *,
    doc_ids: Sequence[str] = (),
    sources: Sequence[str] = (),
    categories: Sequence[str] = (),
    date_from: str | None = None,
    date_to: str | None = None,
) -> Filters:
    filters = Filters(
        doc_ids=_values(doc_ids, "doc_id", "document"),
        sources=_values(sources, "source", "source"),
        categories=_values(categories, "category", "category"),
        date_from=check_date(date_from, "date_from"),
        date_to=check_date(date_to, "date_to"),
    )
    if filters.date_to and len((date_to or "").strip()) < 10:
        # "2021" as an upper bound means the whole year, not its first day.
        text = date_to.strip()  # type: ignore[union-attr]
        filters.date_to = f"{text}-12-31" if len(text) == 4 else f"{text}-31"
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise QueryError(f"date_from {filters.date_from} is after date_to {filters.date_to}: no date lies "
                         "between them (swap them?)")
    return filters


def _values(given: Sequence[str], name: str, what: str) -> list[str]:
    """The values of one filter, refused where one is empty: `doc_id=` searched every document, so a
    client whose variable was empty got unfiltered results as if filtered."""
    if isinstance(given, str) or not all(isinstance(v, str) for v in given):
        raise QueryError(f"{name} filters are a list of strings, not {type(given).__name__}")
    for value in given:
        if not value.strip():
            raise QueryError(f"a {name} filter is empty; leave it out to search every {what}")
    return list(given)


def fold_value(value: str) -> str:
    """A source or category as a filter compares it: simplified script, lower case, half-width, invisible
    characters dropped, and spaces dropped between CJK characters (`新华 社`) and collapsed elsewhere, as
    paragraphs of markup are cleaned (queries are compared so with the text)."""
    return normalize(collapse_whitespace(value))


def folded_values(values: Iterable[str]) -> dict[str, list[str]]:
    """The values an index holds, by their folded form (`fold_value`)."""
    out: dict[str, list[str]] = {}
    for value in values:
        out.setdefault(fold_value(value), []).append(value)
    return out


def merge_folded(facet: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A facet's values (`{"value", "documents"}`, most documents first) with the spellings a filter folds
    together (新华社 and 新華社) as one choice: the most common spelling, their documents summed."""
    merged: dict[str, dict[str, Any]] = {}
    for item in facet:
        key = fold_value(item["value"])
        if key in merged:
            merged[key]["documents"] += item["documents"]
        else:
            merged[key] = {"value": item["value"], "documents": item["documents"]}
    return sorted(merged.values(), key=lambda item: -item["documents"])


def resolve_filters(filters: Filters, held: Mapping[str, Mapping[str, list[str]]]) -> Filters:
    """`filters` with each source and category replaced by the values the index holds that it folds to
    (`held`: "sources" and "categories", each by folded form): `新華社` finds 新华社, `xinhua` Xinhua. A
    value the index does not hold stays as it is, and matches nothing."""

    def resolve(wanted: Sequence[str], kind: str) -> list[str]:
        out: list[str] = []
        for value in wanted:
            out += held[kind].get(fold_value(value), [value])
        return list(dict.fromkeys(out))

    return dataclasses.replace(filters, sources=resolve(filters.sources, "sources"),
                               categories=resolve(filters.categories, "categories"))
