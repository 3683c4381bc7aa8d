"""How faithfully PDF and Word files read back, and how fast: the figures of docs/loaders.md.

    python bench/document_formats.py                      # every set below, 8 articles a document
    python bench/document_formats.py --sets xquad/en --limit 10 --json /tmp/formats.json

Each document is a run of consecutive articles of a development set (their titles as headings, their
paragraphs as they are), the size of a policy paper of a few pages. It is printed to PDF by headless
Chromium (its default header and footer on: the time printed, the title, the address, "2/5") in two
typesettings, Chinese (each paragraph indented, no space between) and web (paragraphs spaced, not
indented), and written to .docx by python-docx. Each file is read back by the project's loader
(`index.loaders.load_bytes`) and compared with the paragraphs it was made from, repaired as a text file's
would be (`Document.from_paragraphs`):

- exact: the share of documents whose paragraphs come back exactly;
- text: the share whose text, whitespace aside, comes back exactly (nothing lost, nothing added);
- boundary precision / recall: of the paragraph ends found, the share that are real, and of the real
  ones, the share found (positions counted in the text without whitespace);
- speed: pages (PDF) or documents (.docx) read a second by the loader, all files of a set read again
  one after another once the printing is over (one process, one core).

The news set states no licence: it is read here to measure, and nothing of it is kept.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.documents import Document  # noqa: E402
from index.loaders import load_bytes  # noqa: E402
from index.text import split_paragraphs  # noqa: E402
from search.evaluate import read_jsonl  # noqa: E402
from tests.conftest import print_to_pdf  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
SETS = ("news/antiterror-train", "drcd-dev", "xquad/en")
STYLES = {
    "indented": "p { text-indent: 2em; margin: 0; }",
    "spaced": "p { margin: 0 0 0.8em 0; }",
}
FONT = 'body { font-family: "WenQuanYi Micro Hei", sans-serif; font-size: 14pt; line-height: 1.6; }'


def documents(folder: Path, per_document: int, limit: int) -> list[tuple[Document, set[int]]]:
    """Documents of `per_document` consecutive articles each: (document, indices of its headings)."""
    articles = list(read_jsonl(folder / "corpus.jsonl"))
    out: list[tuple[Document, set[int]]] = []
    for first in range(0, len(articles) - per_document + 1, per_document):
        paragraphs: list[str] = []
        headings: set[int] = set()
        for article in articles[first : first + per_document]:
            if title := (article.get("title") or "").strip():
                headings.add(len(paragraphs))
                paragraphs.append(title)
            paragraphs += split_paragraphs(article["text"])
        doc = Document.from_paragraphs(f"doc-{first}", paragraphs, headings=headings, title=paragraphs[0])
        titles = {paragraphs[h] for h in headings}
        kept = {i for i, (s, e) in enumerate(doc.paragraphs) if doc.text[s:e] in titles}
        out.append((doc, kept))
        if len(out) == limit:
            break
    return out


def page_of(doc: Document, headings: set[int], style: str) -> str:
    blocks = []
    for i, (start, end) in enumerate(doc.paragraphs):
        tag = "h2" if i in headings else "p"
        blocks.append(f"<{tag}>{html.escape(doc.text[start:end])}</{tag}>")
    return (f'<html><head><meta charset="utf-8"><title>{html.escape(doc.title)}</title>'
            f"<style>{FONT} {style}</style></head><body>{''.join(blocks)}</body></html>")


def word_file(doc: Document, headings: set[int], path: Path) -> Path:
    import docx

    document = docx.Document()
    for i, (start, end) in enumerate(doc.paragraphs):
        if i in headings:
            document.add_heading(doc.text[start:end], level=2)
        else:
            document.add_paragraph(doc.text[start:end])
    document.save(path)
    return path


def squeeze(text: str) -> str:
    return "".join(text.split())


def boundaries(doc: Document) -> set[int]:
    """Where each paragraph ends, counted in the text without whitespace."""
    ends, position = set(), 0
    for start, end in doc.paragraphs:
        position += len(squeeze(doc.text[start:end]))
        ends.add(position)
    return ends


def compare(expected: Document, got: Document) -> dict[str, Any]:
    want, found = boundaries(expected), boundaries(got)
    same = [expected.text[s:e] for s, e in expected.paragraphs] == [got.text[s:e] for s, e in got.paragraphs]
    return {"exact": same, "text": squeeze(expected.text) == squeeze(got.text),
            "true_ends": len(want & found), "found_ends": len(found), "real_ends": len(want)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    out = {
        "documents": n,
        "exact": sum(r["exact"] for r in rows) / n,
        "text": sum(r["text"] for r in rows) / n,
        "boundary_precision": sum(r["true_ends"] for r in rows) / max(1, sum(r["found_ends"] for r in rows)),
        "boundary_recall": sum(r["true_ends"] for r in rows) / max(1, sum(r["real_ends"] for r in rows)),
    }
    seconds = sum(r["seconds"] for r in rows)
    if "pages" in rows[0]:
        out["pages"] = sum(r["pages"] for r in rows)
        out["pages_per_s"] = out["pages"] / seconds
    else:
        out["docs_per_s"] = n / seconds
    return out


def read_time(path: Path) -> float:
    """Seconds the loader takes to read this file: the best of three."""
    data = path.read_bytes()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        load_bytes(path.name, data)
        best = min(best, time.perf_counter() - started)
    return best


def measure(name: str, per_document: int, limit: int, work: Path) -> dict[str, dict[str, Any]]:
    import pypdfium2 as pdfium

    docs = documents(EVAL / name, per_document, limit)
    results: dict[str, list[dict[str, Any]]] = {style: [] for style in STYLES} | {"docx": []}
    files: dict[str, list[Path]] = {kind: [] for kind in results}
    for n, (doc, headings) in enumerate(docs, 1):
        for style, css in STYLES.items():
            pdf = print_to_pdf(page_of(doc, headings, css), work / f"{doc.doc_id}-{style}.pdf")
            data = pdf.read_bytes()
            pages = len(pdfium.PdfDocument(data))
            results[style].append(compare(doc, load_bytes(pdf.name, data)[0]) | {"pages": pages})
            files[style].append(pdf)
        path = word_file(doc, headings, work / f"{doc.doc_id}.docx")
        results["docx"].append(compare(doc, load_bytes(path.name, path.read_bytes())[0]))
        files["docx"].append(path)
        print(f"\r{name}: {n}/{len(docs)} documents printed and read", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    time.sleep(5)  # the last Chromium gone
    for kind, paths in files.items():
        for row, path in zip(results[kind], paths, strict=True):
            row["seconds"] = read_time(path)
    return {kind: summarise(rows) for kind, rows in results.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    ap.add_argument("--per-document", type=int, default=8, help="articles a document")
    ap.add_argument("--limit", type=int, default=25, help="documents a set")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sets = [s for s in args.sets if (EVAL / s / "corpus.jsonl").exists()]
    if not sets:
        print(f"no development sets under {EVAL}", file=sys.stderr)
        return 1
    figures: dict[str, Any] = {"load": os.getloadavg()[0], "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sets:
            figures["sets"][name] = measure(name, args.per_document, args.limit, Path(tmp))
    figures["load_after"] = os.getloadavg()[0]
    print("| set | file | documents | pages | exact | text | boundary P | boundary R | speed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, kinds in figures["sets"].items():
        for kind, f in kinds.items():
            rate = ("pages_per_s", "pages/s") if "pages_per_s" in f else ("docs_per_s", "docs/s")
            speed = f"{f[rate[0]]:.0f} {rate[1]}"
            file = f"PDF, {kind}" if kind != "docx" else ".docx"
            print(f"| {name} | {file} | {f['documents']} | {f.get('pages', '')} | {f['exact']:.3f} | "
                  f"{f['text']:.3f} | {f['boundary_precision']:.3f} | {f['boundary_recall']:.3f} | {speed} |")
    print(f"load average {figures['load']:.2f} before, {figures['load_after']:.2f} after")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
