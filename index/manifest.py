"""A generation's manifest: what it holds and how it was built. Read (`from_dict`) and written (`to_dict`)
here only, whether it is a folder generation's manifest.json or a Milvus index's state row.

Keys this version does not know are kept as they were written (`extra`) and written back, so a newer
semsearch's manifest survives an older one reading it; optional keys an older build did not write are
None (`files`: written before generations had checksums; `roots`: before folders were recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

REQUIRED = ("generation", "model", "dim", "settings", "passages")
# The order keys are written in (as the builder always wrote them), unknown ones after.
ORDER = ("format_version", "generation", "id", "created", "model", "dim", "settings", "documents", "passages",
         "next_passage_id", "previous", "vector_index", "roots", "files")


class ManifestError(ValueError):
    """The manifest cannot be used; the message says what is wrong with it (`lacks dim`)."""


@dataclass
class Manifest:
    generation: str
    model: str
    dim: int
    settings: dict[str, Any]
    passages: int
    documents: int | None = None
    format_version: int | None = None
    id: str | None = None  # the generation's identity, given when it is published
    created: str | None = None
    next_passage_id: int | None = None
    previous: str | None = None
    vector_index: dict[str, Any] | None = None  # the vector index's layout and what it cost to build
    roots: list[dict[str, Any]] | None = None  # the folders indexed: doc_id prefixes, devices
    files: dict[str, dict[str, Any]] | None = None  # path -> {"bytes", "sha256"} of every file
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """The manifest of this JSON value; `ManifestError` when a key it needs is missing or unreadable."""
        missing = [k for k in REQUIRED if not isinstance(data, dict) or k not in data]
        if missing:
            raise ManifestError(f"lacks {', '.join(missing)}")
        files = data.get("files", {})
        if not isinstance(data["settings"], dict) or not (
            isinstance(files, dict)
            and all(isinstance(f, dict) and isinstance(f.get("bytes"), int) for f in files.values())
        ):
            raise ManifestError("has settings or a file table that cannot be read")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every key that is set, then the unknown ones as read."""
        out = {k: getattr(self, k) for k in ORDER if getattr(self, k) is not None}
        return out | {k: v for k, v in self.extra.items() if k not in out}
