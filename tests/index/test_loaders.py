"""Loaders: the two seed articles, each format, encodings, and the files that must be skipped."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from index.documents import Document, LoadError, SkippedFile
from index.loaders import documents_from_records, load_bytes, load_documents, parse_date

DATA = Path(__file__).resolve().parents[2] / "data"
MARKDOWN_SEED = DATA / "000_ad61b687c275495d.txt"
XINHUA_SEED = DATA / "003_07e0a4d71f185c6b.txt"
EVAL = Path("/work/shared/eval")
TAG = re.compile(r"</?[A-Za-z][^>]*>")


def load_one(path: Path) -> tuple[Path, Document]:
    skipped: list[SkippedFile] = []
    loaded = list(load_documents([path], on_skip=skipped.append))
    assert not skipped
    assert len(loaded) == 1
    return loaded[0]


def paragraph_texts(doc: Document) -> list[str]:
    return [doc.text[s:e] for s, e in doc.paragraphs]


def load_folder(folder: Path) -> tuple[dict[str, Document], list[SkippedFile]]:
    skipped: list[SkippedFile] = []
    docs = {doc.doc_id: doc for _, doc in load_documents([folder], on_skip=skipped.append)}
    return docs, skipped


# --- the seeds ----------------------------------------------------------------------------------------


def test_front_matter_seed_metadata() -> None:
    root, doc = load_one(MARKDOWN_SEED)
    assert root == DATA
    assert doc.doc_id == "000_ad61b687c275495d.txt"
    assert doc.path == str(MARKDOWN_SEED)
    assert doc.title == "多地布局_十四五_区域创新中心建设"
    assert doc.date == "2021-11-29"
    assert doc.categories == ["金融", "证券时报网", "要闻"]
    assert doc.author == "证券时报网"
    assert doc.source == "证券时报网"


def test_front_matter_seed_body_is_html() -> None:
    _, doc = load_one(MARKDOWN_SEED)
    assert not TAG.search(doc.text)
    assert "headimg" not in doc.text and "---" not in doc.text
    paragraphs = paragraph_texts(doc)
    assert paragraphs[0].startswith("记者发现，北京、上海")
    # <p><strong>…</strong></p> headings are paragraphs of their own, in order
    for first, second in [("争创区域中心", "十余省市细则落地"), ("科技创新共同体", "蓄势崛起")]:
        i = paragraphs.index(first)
        assert paragraphs[i + 1] == second
        assert paragraphs[i + 2].endswith("。")
    assert "加快打造" in paragraphs
    assert doc.text == "\n\n".join(paragraphs)


def test_xinhua_seed_plain_text() -> None:
    _, doc = load_one(XINHUA_SEED)
    paragraphs = paragraph_texts(doc)
    assert doc.title == "多点支撑，国家区域协同创新高地加快崛起"
    assert doc.source == "新华社"
    assert doc.date is None
    # header lines stay separate paragraphs; the byline is metadata, not text
    assert paragraphs[:3] == [
        "习近平新时代中国特色社会主义思想",
        "在指引下 ——新时代新作为新篇章",
        "多点支撑，国家区域协同创新高地加快崛起",
    ]
    assert "据新华社" not in doc.text
    for heading in ["A 区域协同，科创中心多点开花", "B 高新园区成区域发展“领头雁”", "相关链接："]:
        assert heading in paragraphs


def test_xinhua_seed_repaired() -> None:
    _, doc = load_one(XINHUA_SEED)
    assert "长三角、珠三角" in doc.text
    assert "新型智能算力供应中心" in doc.text
    assert "产业共性技术研发、产业链创新合作，促进大中小企业融通发展" in doc.text
    assert "《关于深入推进创新型产业集群高质量发展的意见》" in doc.text
    # the stray fragment left its old place: no paragraph starts with it any more
    assert not any(p.startswith("发、") for p in paragraph_texts(doc))
    assert doc.text.count("产业链创新合作") == 1


def test_seed_folder() -> None:
    skipped: list[SkippedFile] = []
    loaded = list(load_documents([DATA], on_skip=skipped.append))
    ids = [doc.doc_id for _, doc in loaded]
    assert ids[:2] == ["000_ad61b687c275495d.txt", "003_07e0a4d71f185c6b.txt"]
    assert all(root == DATA for root, _ in loaded)


def test_content_hash_tracks_text_and_metadata() -> None:
    _, doc = load_one(MARKDOWN_SEED)
    _, again = load_one(MARKDOWN_SEED)
    assert doc.content_hash() == again.content_hash()
    again.title = "another title"
    assert doc.content_hash() != again.content_hash()
    again.path = "/elsewhere"
    again.title = doc.title
    assert doc.content_hash() == again.content_hash()


# --- folders, skips, encodings ------------------------------------------------------------------


def test_folder_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("第二篇文章的正文。", encoding="utf-8")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z.md").write_text("# 标题\n\n正文。", encoding="utf-8")
    (tmp_path / "a" / "c.html").write_text("<p>网页正文。</p>", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("不应读入。", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("不应读入。", encoding="utf-8")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    skipped: list[SkippedFile] = []
    loaded = list(load_documents([tmp_path], on_skip=skipped.append))
    assert [doc.doc_id for _, doc in loaded] == ["a/c.html", "a/z.md", "b.txt"]
    assert skipped == []  # other file types in a folder are not errors
    assert {root for root, _ in loaded} == {tmp_path.resolve()}
    assert loaded[1][1].title == "标题"


def test_unsupported_file_given_explicitly(tmp_path: Path) -> None:
    file = tmp_path / "notes.xyz"
    file.write_text("text", encoding="utf-8")
    skipped: list[SkippedFile] = []
    assert list(load_documents([file], on_skip=skipped.append)) == []
    assert [s.reason for s in skipped] == ["unsupported file type .xyz"]
    assert skipped[0].path.endswith("notes.xyz")


def test_binary_empty_and_undecodable_files_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00" * 20)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text(" \n\n\t \n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes(
        "Caf\xe9 ol\xe9 na\xefve \xe9t\xe9 \xe0 la cr\xe8me.".encode("latin-1")
    )
    (tmp_path / "bad-utf16.txt").write_bytes(b"\xff\xfe" + "中文".encode("utf-16-le") + b"\x00\xd8")
    (tmp_path / "good.txt").write_text("正常的文章。", encoding="utf-8")
    docs, skipped = load_folder(tmp_path)
    assert list(docs) == ["good.txt"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons == {
        "bad-utf16.txt": "invalid UTF-16",
        "binary.txt": "binary file",
        "blank.md": "empty",
        "empty.txt": "empty",
        "latin1.txt": "not UTF-8, GB18030, Big5, Shift-JIS, EUC-JP or EUC-KR",
    }
    assert "binary.txt" in caplog.text  # each skip is logged, naming the file


def test_gb18030_and_bom(tmp_path: Path) -> None:
    text = "标题\n\n这是用国标编码保存的文章。第二句话！"
    (tmp_path / "gb.txt").write_bytes(text.encode("gb18030"))
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (tmp_path / "crlf.txt").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    docs, skipped = load_folder(tmp_path)
    assert not skipped
    for doc in docs.values():
        assert doc.title == "标题"
        assert doc.text == "标题\n\n这是用国标编码保存的文章。第二句话！"
    (tmp_path / "cut.txt").write_bytes(text.encode("utf-8")[:-1])  # `head -c`: cut inside "！"
    _, doc = load_one(tmp_path / "cut.txt")
    assert doc.text == "标题\n\n这是用国标编码保存的文章。第二句话"


def test_only_regular_files_of_bounded_size_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO used to hang the run and a link to /dev/zero to read until the kernel killed it."""
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    (tmp_path / "large.txt").write_text("大文件的内容。" * 200, encoding="utf-8")
    (tmp_path / "good.txt").write_text("正常的文章。", encoding="utf-8")
    monkeypatch.setenv("SEMSEARCH_MAX_FILE_BYTES", "1000")
    docs, skipped = load_folder(tmp_path)
    assert list(docs) == ["good.txt"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons == {
        "pipe.txt": "not a regular file (FIFO)",
        "zero.txt": "not a regular file (character device)",
        "dangling.md": "unreadable: No such file or directory",
        "large.txt": "larger than 1,000 bytes (SEMSEARCH_MAX_FILE_BYTES)",
    }
    assert all(s.failed for s in skipped)  # what the index had from them is kept
    skipped.clear()  # given on its own, a FIFO is refused the same way (not "no such file")
    assert list(load_documents([tmp_path / "pipe.txt"], on_skip=skipped.append)) == []
    assert [s.reason for s in skipped] == ["not a regular file (FIFO)"]
    monkeypatch.setenv("SEMSEARCH_MAX_FILE_BYTES", "ten")
    with pytest.raises(LoadError, match="SEMSEARCH_MAX_FILE_BYTES must be a whole number of bytes"):
        load_folder(tmp_path)


TRADITIONAL = "臺灣大學成立於一九二八年，是臺灣歷史最悠久的高等學府之一。校園內的椰林大道遠近馳名。"
JAPANESE = "東京都は本日、新しい科学技術振興計画を発表しました。大学と企業の共同研究を支援します。"


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("big5", TRADITIONAL),  # Taiwan and Hong Kong files: used to come out as GB18030 gibberish
        # dense with CJK punctuation, which charset-normalizer's default threshold refuses
        ("big5", "堅持“共需、共建、共享、共治”理念，按照“政府引導、市場運作”原則。"),
        ("cp932", JAPANESE),  # Shift-JIS, as Windows writes it
        ("euc_jp", JAPANESE),
        ("gb18030", "成都超算中心自2020年投运以来，为西部地区产业发展提供了强大的算力支撑。"),
        ("gb18030", "长三角国家技术创新中心"),
        ("utf-16", TRADITIONAL),  # Windows Notepad's "Unicode": UTF-16 LE with a byte-order mark
        ("utf-16-be-bom", JAPANESE),
        ("utf-32", TRADITIONAL),
    ],
)
def test_legacy_and_utf16_encodings_are_detected(tmp_path: Path, encoding: str, text: str) -> None:
    data = b"\xfe\xff" + text.encode("utf-16-be") if encoding == "utf-16-be-bom" else text.encode(encoding)
    (tmp_path / "doc.txt").write_bytes(data)
    _, doc = load_one(tmp_path / "doc.txt")
    assert doc.text == text
    (doc,) = load_bytes("upload.txt", data)  # the API reads uploads the same way
    assert doc.text == text


def test_missing_path_is_reported(tmp_path: Path) -> None:
    skipped: list[SkippedFile] = []
    assert list(load_documents([tmp_path / "nope"], on_skip=skipped.append)) == []
    assert skipped[0].reason == "no such file or folder"


# --- formats --------------------------------------------------------------------------------------------

HTML_PAGE = """<!DOCTYPE html>
<html><head><title>新闻 &amp; 评论</title>
<meta name="author" content="张三"><meta property="og:site_name" content="人民网">
<meta property="article:published_time" content="2023-05-06T08:00:00+08:00">
<link rel="canonical" href="https://example.com/a.html">
<style>body { color: red; }</style><script>var secret = 1;</script></head>
<body><nav><a href="/">首页</a></nav>
<h1>主标题</h1>
<!-- a comment that is not text -->
<div>第一段：经济
  持续恢复。<br>换行后的第二段。</div>
<p>A&nbsp;&amp;&nbsp;B 合作<em>加强</em>。</p>
<noscript>请启用脚本</noscript>
<ul><li>第一项。</li><li>第二项。</li></ul>
<table><tr><th>地区</th><th>增速</th></tr><tr><td>北京</td><td>5.2%</td></tr><tr><td>上海</td><td>5.0%</td></tr></table>
<p><strong>小标题</strong></p><p>小标题下的正文。</p>
</body></html>"""


def test_html_drops_scripts_styles_comments() -> None:
    (doc,) = load_bytes("page.html", HTML_PAGE.encode("utf-8"))
    paragraphs = paragraph_texts(doc)
    for unwanted in ("secret", "color", "comment", "请启用脚本", "首页", "<", "&amp;", "&nbsp;"):
        assert unwanted not in doc.text
    assert paragraphs == [
        "主标题",
        "第一段：经济持续恢复。",
        "换行后的第二段。",
        "A & B 合作加强。",
        "第一项。",
        "第二项。",
        "地区 | 增速",
        "北京 | 5.2%",
        "上海 | 5.0%",
        "小标题",
        "小标题下的正文。",
    ]
    assert doc.title == "新闻 & 评论"
    assert (doc.author, doc.source, doc.date, doc.url) == (
        "张三",
        "人民网",
        "2023-05-06",
        "https://example.com/a.html",
    )
    assert doc.path is None


def test_deeply_nested_html_keeps_its_text(tmp_path: Path) -> None:
    """Markup nested thousands deep (generated pages, hostile uploads) is read, not a RecursionError."""
    depth = 5000
    page = "<html><body>" + "<div><span>" * depth + "<h2>深处的标题</h2><p>深处的段落文字。</p>"
    page += "</span></div>" * depth + "<p>结尾。</p></body></html>"
    (doc,) = load_bytes("deep.html", page.encode("utf-8"))
    assert paragraph_texts(doc) == ["深处的标题", "深处的段落文字。", "结尾。"]
    (tmp_path / "deep.html").write_text(page, encoding="utf-8")
    _, from_file = load_one(tmp_path / "deep.html")
    assert from_file.text == doc.text


def test_html_title_falls_back_to_h1() -> None:
    (doc,) = load_bytes("x.htm", "<h1>只有一级标题</h1><p>正文。</p>".encode())
    assert doc.title == "只有一级标题"


def test_markdown_syntax_is_stripped() -> None:
    source = """# 报告标题

正文有**加粗**、*强调*和[链接文字](https://example.com)，
以及`代码`。![图](a.png)

## 第二节

- 第一项
- 第二项 with snake_case_name

1. 编号一

| 地区 | 增速 |
|------|-----:|
| 北京 | 5.2% |
"""
    (doc,) = load_bytes("notes/report.md", source.encode("utf-8"))
    assert doc.doc_id == "notes/report.md"
    assert doc.title == "报告标题"
    assert paragraph_texts(doc) == [
        "报告标题",
        "正文有加粗、强调和链接文字，以及代码。",
        "第二节",
        "第一项",
        "第二项 with snake_case_name",
        "编号一",
        "地区 | 增速",
        "北京 | 5.2%",
    ]


def test_markdown_front_matter_fields() -> None:
    source = (
        "\n---\ntitle: 标题\ndate: 2021-11-29\ncategories: 金融\nsource: 新华社\nauthor: 王五\n"
        "link: https://example.com/x\n---\n# 正文标题\n\n正文。"
    )
    (doc,) = load_bytes("a.md", source.encode())
    assert (doc.title, doc.date, doc.categories, doc.source, doc.author, doc.url) == (
        "标题", "2021-11-29", ["金融"], "新华社", "王五", "https://example.com/x"
    )  # fmt: skip
    assert doc.text == "正文标题\n\n正文。"


def test_invalid_front_matter_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    (doc,) = load_bytes("a.md", "---\ntitle: [unclosed\n---\n正文。".encode())
    assert (doc.title, doc.text) == ("a", "正文。")
    assert "front matter" in caplog.text


def test_text_title_falls_back_to_file_stem() -> None:
    (doc,) = load_bytes("plain-note.txt", "这是一段没有标题的正文，它足够长，是真正的段落。".encode())
    assert doc.title == "plain-note"


@pytest.mark.parametrize(
    ("byline", "source"),
    [
        ("据新华社", "新华社"),
        ("（新华社）", "新华社"),
        ("来源：人民日报", "人民日报"),
        ("Source: Reuters", "Reuters"),
    ],
)
def test_plain_text_byline_gives_source(byline: str, source: str) -> None:
    (doc,) = load_bytes("a.txt", f"标题\n\n正文第一句。正文第二句。\n\n{byline}\n".encode())
    assert doc.source == source
    assert byline not in doc.text


def test_plain_text_end_marker_is_not_a_source() -> None:
    (doc,) = load_bytes("a.txt", "正文第一句。\n\n（完）\n".encode())
    assert doc.source is None


# --- JSONL and records ------------------------------------------------------------------------------


def test_jsonl_good(tmp_path: Path) -> None:
    lines = [
        {
            "doc_id": "n1",
            "title": "一",
            "text": "第一段。\n第二段。",
            "date": "2021年11月29日",
            "categories": "要闻",
        },
        {"text": "没有编号的文章。", "source": "新华社", "url": "https://example.com/2"},
        {
            "doc_id": "n3",
            "text": "正文。",
            "categories": ["a", "b"],
            "author": "李四",
            "extra": {"ignored": 1},
        },
    ]
    file = tmp_path / "docs.jsonl"
    file.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n", encoding="utf-8")
    loaded = list(load_documents([file]))
    docs = [doc for _, doc in loaded]
    assert [d.doc_id for d in docs] == ["n1", "docs.jsonl#2", "n3"]
    assert paragraph_texts(docs[0]) == ["第一段。", "第二段。"]
    assert (docs[0].title, docs[0].date, docs[0].categories) == ("一", "2021-11-29", ["要闻"])
    assert (docs[1].source, docs[1].url) == ("新华社", "https://example.com/2")
    assert (docs[2].categories, docs[2].author) == (["a", "b"], "李四")
    assert all(d.path == str(file.resolve()) for d in docs)


def test_jsonl_bad_line_skips_only_that_line(tmp_path: Path) -> None:
    """`semsearch index` reads the good lines and names each bad one; an upload is refused as a whole."""
    file = tmp_path / "docs.jsonl"
    file.write_text(
        '{"doc_id": "a", "text": "好的。"}\n{"doc_id": "b", "text": \n'
        '{"text": ""}\n{"doc_id": "c", "text": "也好。"}\n',
        encoding="utf-8",
    )
    skipped: list[SkippedFile] = []
    assert [d.doc_id for _, d in load_documents([tmp_path], on_skip=skipped.append)] == ["a", "c"]
    assert [s.reason.split(":")[0] for s in skipped] == [
        "line 2 of docs.jsonl is not valid JSON",
        "line 3 of docs.jsonl",
    ]
    assert all(s.failed and s.path == str(file.resolve()) for s in skipped)
    with pytest.raises(LoadError, match=r"line 2 of docs\.jsonl is not valid JSON"):
        load_bytes("docs.jsonl", file.read_bytes())
    file.write_text('{"doc_id": "b", "text": \n', encoding="utf-8")
    skipped.clear()
    assert list(load_documents([file], on_skip=skipped.append)) == []
    assert [s.reason for s in skipped][-1] == "docs.jsonl has no valid records"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"title": "no text"}', r"line 2 of d\.jsonl: field 'text' is required"),
        ('{"text": "   "}', r"line 2 of d\.jsonl: field 'text'"),
        ("[1, 2]", r"line 2 of d\.jsonl is not a JSON object"),
        ('{"text": "x", "date": "yesterday"}', r"line 2 of d\.jsonl: field 'date'"),
        ('{"text": "x", "categories": [1]}', r"line 2 of d\.jsonl: field 'categories'"),
        ('{"doc_id": "a", "text": "x"}', r"line 2 of d\.jsonl: doc_id 'a' was already used by line 1"),
    ],
)
def test_jsonl_invalid_records(line: str, message: str) -> None:
    data = ('{"doc_id": "a", "text": "第一条。"}\n' + line + "\n").encode()
    with pytest.raises(LoadError, match=message):
        load_bytes("d.jsonl", data)


def test_load_bytes_errors() -> None:
    with pytest.raises(LoadError, match=r"docs\.bin is binary, not text"):
        load_bytes("docs.bin", b"\x00\x01\x02binary")
    with pytest.raises(LoadError, match=r"unsupported file type \.bin"):
        load_bytes("docs.bin", "文本".encode())
    with pytest.raises(LoadError, match=r"a\.txt is empty"):
        load_bytes("a.txt", b"  \n")
    (doc,) = load_bytes("../../etc/a.txt", "正文。".encode())
    assert doc.doc_id == "etc/a.txt"


def test_documents_from_records() -> None:
    docs = documents_from_records(
        [
            {"doc_id": "x", "text": "正文。", "date": "Mon, 29 Nov 2021 13:05:00 GMT", "categories": "财经"},
            {"text": "没有编号。"},
        ]
    )
    assert (docs[0].doc_id, docs[0].date, docs[0].categories, docs[0].path) == (
        "x",
        "2021-11-29",
        ["财经"],
        None,
    )
    assert re.fullmatch(r"[0-9a-f]{16}", docs[1].doc_id)  # derived from the text: stable across uploads
    assert documents_from_records([{"text": "没有编号。"}])[0].doc_id == docs[1].doc_id


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"text": "ok"}, {"title": "t"}], r"records\[1\]: field 'text'"),
        ([{"text": "ok", "date": "soon"}], r"records\[0\]: field 'date'"),
        ([{"text": "ok", "categories": {"a": 1}}], r"records\[0\]: field 'categories'"),
        ([{"text": "ok", "title": 3}], r"records\[0\]: field 'title'"),
        (["text"], r"records\[0\] is not a JSON object"),
    ],
)
def test_documents_from_records_validation(records: list, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        documents_from_records(records)


@pytest.mark.skipif(not (EVAL / "xquad" / "zh" / "corpus.jsonl").exists(), reason="eval sets not available")
def test_eval_corpus_loads_with_answers_intact() -> None:
    corpus = EVAL / "xquad" / "zh" / "corpus.jsonl"
    raw = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    docs = {doc.doc_id: doc for _, doc in load_documents([corpus])}
    assert list(docs) == [r["doc_id"] for r in raw]
    assert all(docs[r["doc_id"]].title == r["title"] for r in raw)
    queries = [json.loads(line) for line in (corpus.parent / "queries.jsonl").read_text().splitlines()]
    for query in queries:
        assert any(answer in docs[query["doc_id"]].text for answer in query["answers"]), query["qid"]


# --- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 29 Nov 2021 13:05:00 GMT", "2021-11-29"),
        ("2021-11-29", "2021-11-29"),
        ("2021-11-29T23:30:00+08:00", "2021-11-29"),
        ("2021/1/5", "2021-01-05"),
        ("2021.01.05 10:00", "2021-01-05"),
        ("2021年11月29日 13:05", "2021-11-29"),
        ("20211129", "2021-11-29"),
        ("Nov 29, 2021", "2021-11-29"),
        ("29 November 2021", "2021-11-29"),
        (1638191100, "2021-11-29"),
        (None, None),
        ("", None),
    ],
)
def test_parse_date(value: object, expected: str | None) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2021", "Nov 2021", "2021-13-45", True])
def test_parse_date_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_date(value)


@pytest.mark.parametrize("name", [b"new\nline.txt", b"\xff\xfename.txt"], ids=["newline", "not UTF-8"])
def test_a_file_whose_name_cannot_be_an_id_is_skipped_and_the_rest_read(tmp_path: Path, name: bytes) -> None:
    (tmp_path / "good.txt").write_text("长三角科技创新共同体建设。", encoding="utf-8")
    with open(os.fsencode(tmp_path) + b"/" + name, "w", encoding="utf-8") as bad:
        bad.write("正常的文本。")
    skipped: list[SkippedFile] = []
    documents = [doc for _root, doc in load_documents([tmp_path], on_skip=skipped.append)]
    assert [doc.doc_id for doc in documents] == ["good.txt"]
    assert len(skipped) == 1 and "rename it" in skipped[0].reason and skipped[0].failed


def test_a_semsearchignore_leaves_out_what_its_patterns_match(tmp_path: Path) -> None:
    """A folder's `.semsearchignore`: names at any depth, paths from the folder, folders only, and lines
    that take back what an earlier line left out; the run says how much it left out."""
    from index.loaders import IGNORE_FILE

    for name in ("keep.txt", "scratch.tmp.txt", "drafts/a.txt", "sub/drafts/b.txt", "archive/2019/c.md",
                 "archive/2020/d.md", "scans/e.txt", "notes/scans.txt", "old/f.txt", "old/important.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"{name} 的正文。", encoding="utf-8")
    lines = ["# drafts and scratch files", "*.tmp.txt", "drafts/", "", "archive/2019/*", "/scans", "old/*",
             "!old/important.txt"]
    (tmp_path / IGNORE_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    skipped: list[SkippedFile] = []
    found = sorted(doc.doc_id for _, doc in load_documents([tmp_path], on_skip=skipped.append))
    assert found == ["archive/2020/d.md", "keep.txt", "notes/scans.txt", "old/important.txt"]
    (note,) = skipped
    assert note.path == str(tmp_path / IGNORE_FILE) and not note.failed
    assert "left out 6 file(s) and folder(s)" in note.reason  # drafts twice, scans, 3 files

    (tmp_path / IGNORE_FILE).write_bytes(b"\xff\xfe\x00bad")  # unreadable: everything is indexed, loudly
    skipped.clear()
    assert len(list(load_documents([tmp_path], on_skip=skipped.append))) == 10
    assert [s.failed for s in skipped] == [True] and "nothing was left out" in skipped[0].reason
