"""PDF and Word files: real files (PDFs printed by Chromium, .docx written by python-docx) read into the
same paragraphs as the text they were made from, searched and cited; the files that cannot be read are
skipped saying what to do."""

from __future__ import annotations

import html
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docx
import pypdf
import pypdfium2 as pdfium
import pytest

from index.builder import IndexBuilder
from index.documents import Document, LoadError, SkippedFile
from index.loaders import load_bytes, load_documents
from index.stores.passages import Filters
from search.engine import Engine
from tests.conftest import DATA, needs_chromium, print_to_pdf

SEEDS = sorted(DATA.glob("*.txt"))
INDENTED = "p { text-indent: 2em; margin: 0; }"  # Chinese typesetting: each paragraph indented
SPACED = "p { margin: 0 0 0.8em 0; }"  # web typesetting: paragraphs apart, not indented
ENGLISH = [
    "The Yangtze River Delta Innovation Plan",
    "The Yangtze River Delta region has set a target for research and development spending to reach "
    "three percent of its gross domestic product by 2025. The plan covers Shanghai, Jiangsu, Zhejiang and "
    "Anhui, and names the national technology innovation centre in Shanghai as the core of a shared "
    "system of laboratories, pilot plants and venture funds.",
    "Officials said the centre would follow a model of one core team, one set of operating rules and one "
    "integrated management system. Each province keeps its own strengths: Jiangsu in advanced "
    "manufacturing, Zhejiang in the digital economy, and Anhui in quantum information.",
    "In Chengdu, the supercomputing centre that opened in 2020 now serves industries across the western "
    "region. Around it, fifty-nine science and technology projects have gathered, with a total "
    "investment of more than 170 billion yuan.",
]

pytestmark = needs_chromium


def paragraphs(doc: Document) -> list[str]:
    return [doc.text[start:end] for start, end in doc.paragraphs]


def page_of(title: str, texts: list[str], style: str) -> str:
    body = "".join(f"<p>{html.escape(text)}</p>" for text in texts)
    return (
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>'
        f'body {{ font-family: "WenQuanYi Micro Hei"; font-size: 14pt; line-height: 1.6; }} {style}'
        f"</style></head><body>{body}</body></html>"
    )


def load_one(path: Path) -> Document:
    skipped: list[SkippedFile] = []
    docs = [doc for _, doc in load_documents([path], on_skip=skipped.append)]
    assert not skipped, skipped
    assert len(docs) == 1
    return docs[0]


def skip_reason(path: Path) -> SkippedFile:
    skipped: list[SkippedFile] = []
    assert not list(load_documents([path], on_skip=skipped.append))
    assert len(skipped) == 1
    return skipped[0]


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Document]]:
    """Each seed printed in both typesettings (browser header and footer on), with the text document."""
    folder = tmp_path_factory.mktemp("pdfs")
    printed: dict[str, tuple[Path, Document]] = {}
    for seed in SEEDS:
        text = load_one(seed)
        for name, style in (("indented", INDENTED), ("spaced", SPACED)):
            pdf = folder / f"{seed.stem}-{name}.pdf"
            print_to_pdf(page_of(text.title, paragraphs(text), style), pdf)
            printed[pdf.stem] = pdf, text
    return printed


# --- PDF ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [s.stem for s in SEEDS])
@pytest.mark.parametrize("style", ["indented", "spaced"])
def test_a_printed_article_reads_as_the_paragraphs_it_was_printed_from(
    pdfs: dict[str, tuple[Path, Document]], seed: str, style: str
) -> None:
    pdf, text = pdfs[f"{seed}-{style}"]
    doc = load_one(pdf)
    assert doc.doc_id == pdf.name and doc.path == str(pdf)
    # Lines joined into paragraphs, paragraphs carried across pages, nothing split or merged.
    assert paragraphs(doc) == paragraphs(text)
    assert doc.title == text.title  # the PDF's own title (the page's <title>)
    # The browser's header and footer (time printed, title, file address, "2/5") are not text.
    assert "file://" not in doc.text and "AM" not in doc.text and "PM" not in doc.text
    assert doc.text.count(text.title) == text.text.count(text.title)


def test_ragged_english_text_keeps_its_paragraphs(tmp_path: Path) -> None:
    for style in ("p { margin: 0 0 0.8em 0; text-align: left; }", "p { margin: 0; text-indent: 2em; }"):
        pdf = print_to_pdf(page_of(ENGLISH[0], ENGLISH, style), tmp_path / "plan.pdf")
        assert paragraphs(load_one(pdf)) == ENGLISH


def test_a_pdf_without_a_page_header_takes_its_largest_first_line_as_title(tmp_path: Path) -> None:
    heading = "<h1>宜宾推进大学城建设</h1>"
    page = page_of("", ["宜宾正举全市之力超常规推进大学城、科创城“双城建设”，已引进高校十二所。"], INDENTED)
    pdf = print_to_pdf(page.replace("<body>", f"<body>{heading}").replace("<title></title>", ""),
                       tmp_path / "宜宾.pdf", margins=False)
    doc = load_one(pdf)
    assert doc.title == "宜宾推进大学城建设"
    assert paragraphs(doc)[0] == "宜宾推进大学城建设"


def test_pdfs_that_cannot_be_read_are_skipped_saying_what_to_do(
    pdfs: dict[str, tuple[Path, Document]], tmp_path: Path
) -> None:
    scan = print_to_pdf(
        '<html><body><div style="width:400px;height:600px;background:linear-gradient(red,blue)"></div>'
        "</body></html>",
        tmp_path / "scan.pdf",
        margins=False,
    )
    skipped = skip_reason(scan)
    assert skipped.failed and skipped.reason == "no text layer (a scanned PDF?): run OCR on it first"
    with pytest.raises(LoadError, match="scan.pdf has no text layer.*OCR"):
        load_bytes("scan.pdf", scan.read_bytes())

    real, _ = next(iter(pdfs.values()))
    locked = tmp_path / "locked.pdf"
    writer = pypdf.PdfWriter(clone_from=real)
    writer.encrypt("secret")
    writer.write(locked)
    assert skip_reason(locked).reason == "password-protected PDF: save a copy without the password"
    with pytest.raises(LoadError, match="locked.pdf is password-protected; save a copy without"):
        load_bytes("locked.pdf", locked.read_bytes())

    # A file with only an owner password (printing or copying restricted) opens without one.
    restricted = tmp_path / "restricted.pdf"
    writer = pypdf.PdfWriter(clone_from=real)
    writer.encrypt("", owner_password="owner")
    writer.write(restricted)
    assert load_one(restricted).text == load_one(real).text

    cut = tmp_path / "cut.pdf"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 3])
    assert skip_reason(cut).reason.startswith("damaged PDF")
    named = tmp_path / "notes.pdf"
    named.write_text("这不是PDF文件。", encoding="utf-8")
    assert skip_reason(named).reason == "not a PDF"


def test_pdfs_read_at_once_from_many_threads_read_the_same(pdfs: dict[str, tuple[Path, Document]]) -> None:
    # The server reads uploads in a thread pool; PDFium itself is not thread-safe.
    files = [path.read_bytes() for path, _ in pdfs.values()]
    alone = [load_bytes("a.pdf", data)[0].text for data in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda data: load_bytes("a.pdf", data)[0].text, files * 3))
    assert together == alone * 3


# --- Word ---------------------------------------------------------------------------------------------


def word_file(path: Path, *, title: str | None = None, author: str = "Administrator") -> Path:
    document = docx.Document()
    document.core_properties.author = author
    if title is not None:
        document.core_properties.title = title
    document.add_heading("宜宾大学城建设", level=1)
    lines = document.add_paragraph("宜宾正举全市之力超常规推进大学城、")
    lines.add_run().add_break()  # a line break inside the paragraph (Shift+Enter)
    lines.add_run("科创城“双城建设”。")
    document.add_heading("一、总体要求", level=2)
    goal = document.add_paragraph("到2025年，引进高校12所，")
    goal.add_run("在校学生达到10万人。").bold = True
    table = document.add_table(rows=2, cols=3)
    for i, row in enumerate([["项目", "投资", "年份"], ["大学城", "300亿元", "2025"]]):
        for j, value in enumerate(row):
            table.cell(i, j).text = value
    document.add_paragraph("以上为规划目标。")
    document.save(path)
    return path


def test_a_word_file_reads_paragraphs_headings_and_tables_in_order(tmp_path: Path) -> None:
    doc = load_one(word_file(tmp_path / "yibin.docx"))
    assert paragraphs(doc) == [
        "宜宾大学城建设",
        "宜宾正举全市之力超常规推进大学城、科创城“双城建设”。",
        "一、总体要求",
        "到2025年，引进高校12所，在校学生达到10万人。",
        "项目 | 投资 | 年份",
        "大学城 | 300亿元 | 2025",
        "以上为规划目标。",
    ]
    assert doc.title == "宜宾大学城建设"  # the first heading
    assert doc.author is None  # Word's default user name is not an author


def test_a_word_file_title_and_author_from_its_properties(tmp_path: Path) -> None:
    doc = load_one(word_file(tmp_path / "plan.docx", title="宜宾市大学城建设规划", author="宜宾市发改委"))
    assert doc.title == "宜宾市大学城建设规划" and doc.author == "宜宾市发改委"
    same = load_bytes("uploads/plan.docx", (tmp_path / "plan.docx").read_bytes())
    assert [d.text for d in same] == [doc.text] and same[0].doc_id == "uploads/plan.docx"


def test_word_files_that_cannot_be_read_say_what_to_do(tmp_path: Path) -> None:
    old = tmp_path / "old.docx"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))  # the header of a Word 97-2003 file
    with pytest.raises(LoadError, match="old.docx is a Word 97-2003 document, not .docx; save it as .docx"):
        load_bytes("old.docx", old.read_bytes())
    assert skip_reason(old).failed
    (tmp_path / "notes.docx").write_text("纯文本", encoding="utf-8")
    assert skip_reason(tmp_path / "notes.docx").reason == "not a .docx file"
    broken = io.BytesIO()
    word_file(tmp_path / "whole.docx")
    broken.write((tmp_path / "whole.docx").read_bytes()[:2000])
    (tmp_path / "cut.docx").write_bytes(broken.getvalue())
    assert skip_reason(tmp_path / "cut.docx").reason.startswith("damaged .docx")
    (tmp_path / "report.doc").write_bytes(old.read_bytes())
    assert "save it as .docx or PDF" in skip_reason(tmp_path / "report.doc").reason

    # In a folder, a Word 97-2003 or WPS file is named too, not left out in silence; other files are.
    folder = tmp_path / "archive"
    folder.mkdir()
    word_file(folder / "yibin.docx")
    (folder / "old.doc").write_bytes(old.read_bytes())
    (folder / "notes.wps").write_bytes(old.read_bytes())
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    skipped: list[SkippedFile] = []
    docs = [doc.doc_id for _, doc in load_documents([folder], on_skip=skipped.append)]
    assert docs == ["yibin.docx"]
    assert [(Path(s.path).name, s.failed) for s in skipped] == [("notes.wps", False), ("old.doc", False)]
    assert all("save it as .docx or PDF" in s.reason for s in skipped)


# --- indexed and searched ----------------------------------------------------------------------------


def test_pdf_and_word_files_are_indexed_searched_and_cited(
    pdfs: dict[str, tuple[Path, Document]], tmp_path: Path
) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    pdf, text = pdfs["003_07e0a4d71f185c6b-indented"]
    (folder / "policy.pdf").write_bytes(pdf.read_bytes())
    word_file(folder / "yibin.docx")
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    summary = IndexBuilder(tmp_path / "index").index_paths([folder])
    assert summary.documents == 2 and not summary.clean
    assert [s.path for s in summary.skipped] == [str(folder / "scan.pdf")]

    engine = Engine.open(tmp_path / "index")
    hit = engine.search("成都超算中心周边聚集了多少个科技创新项目", k=1).results[0]
    assert hit.doc_id == "policy.pdf" and hit.title == text.title
    assert engine.document("policy.pdf")["text"][hit.start : hit.end] == hit.text
    assert "59个" in hit.text
    hits = engine.search("大学城项目的投资", k=3).results
    assert any(h.doc_id == "yibin.docx" and "大学城 | 300亿元 | 2025" in h.text for h in hits)  # a table row
    assert all(h.page is None for h in hits if h.doc_id == "yibin.docx")  # no pages in a Word file

    # Each passage of the PDF cites the page it starts on: that page of the file holds its first words.
    printed = ["".join(page.get_textpage().get_text_range().split()) for page in pdfium.PdfDocument(pdf)]
    stored = engine.document("policy.pdf")
    assert len(stored["pages"]) == len(printed) > 1
    for query in ("成都超算中心", "创新型产业集群", "中部地区高质量发展", "长三角国家技术创新中心"):
        for h in engine.search(query, k=5, filters=Filters(doc_ids=["policy.pdf"])).results:
            words = "".join(h.text.split())[:12]
            assert h.page is not None and words in printed[h.page - 1], (query, h.page, words)
    assert {p["page"] for p in stored["passages"]} == set(range(1, len(printed) + 1))

    # A later run that changes another file keeps the PDF's pages (copied to the new generation).
    word_file(folder / "yibin.docx", title="宜宾市大学城建设规划")
    assert IndexBuilder(tmp_path / "index").index_paths([folder]).updated == 1
    assert Engine.open(tmp_path / "index").document("policy.pdf")["pages"] == stored["pages"]
