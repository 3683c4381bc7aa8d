"""The search page in a real browser: Debian's Chromium driven by pytest-playwright.

Screenshots go to tests/artifacts/. With SEMSEARCH_UPDATE_SCREENSHOT=1 the results page is also saved
as docs/screenshot.png (left alone otherwise, so a test run does not change tracked files).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest

from tests.api.conftest import ARTIFACTS, ROOT, LiveServer, wait_for_job
from tests.conftest import DATA, needs_chromium, print_to_pdf

pytest.importorskip("pytest_playwright", reason="pytest-playwright is not installed")
pytestmark = needs_chromium

from playwright.sync_api import Page, Route, expect  # noqa: E402 - after the skip for a missing plugin

QUERY = "长三角 研发投入"
ZQSB = "000_ad61b687c275495d.txt"
XSS_ID = "xss/evil<b>.html.txt"
XSS_TEXT = '报告写道 <script>window.__xss=1</script> 以及 <img src=x onerror="window.__xss=2"> 结束。'


@pytest.fixture(scope="module", autouse=True)
def xss_document(server: LiveServer) -> None:
    """A document whose text and title are HTML, added through the API like any other."""
    with server.client() as client:
        doc = {"doc_id": XSS_ID, "title": "<i>标题</i><script>window.__xss=3</script>", "text": XSS_TEXT,
               "source": "<b>来源</b>"}
        job = client.post("/documents", json={"documents": [doc]}).json()
        assert wait_for_job(client, job["job"])["state"] == "done"


@pytest.fixture
def page(page: Page) -> Iterator[Page]:
    """The plugin's page, failing the test on any script error of the page itself."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    yield page
    assert not errors, f"errors in the page: {errors}"


def search_url(server: LiveServer, query: str, **params: str) -> str:
    extra = "".join(f"&{k}={quote(v)}" for k, v in params.items())
    return f"{server.url}/?q={quote(query)}{extra}"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def the_passage(page: Page):
    source = page.locator(".source", has_text="证券时报网")
    return page.locator(".result", has_text="超过3%").filter(has=source)


def test_search_highlights_then_opens_the_passage_in_its_article(server: LiveServer, page: Page) -> None:
    page.goto(server.url)
    expect(page.locator("#q")).to_be_focused()
    page.locator("#q").fill(QUERY)
    page.keyboard.press("Enter")
    result = the_passage(page).first
    expect(result).to_be_visible()
    assert parse_qs(urlparse(page.url).query)["q"] == [QUERY], "the query lives in the URL"
    expect(result.locator("mark", has_text="研发投入").first).to_be_visible()
    parts = (result.locator(".score").get_attribute("title") or "").split(" · ")
    assert len(parts) >= 2, "the score's dense (and keyword) parts are on hover"
    assert any(re.fullmatch(r"(query words|含查询词) \d+%", p) for p in parts), parts
    shot(page, "results")

    result.locator("a.action.open").click()
    cited = page.locator("mark.cite").first
    expect(cited).to_be_visible()
    expect(cited).to_contain_text("超过3%")
    expect(cited).to_be_in_viewport()
    expect(cited).to_be_focused()  # the keyboard goes on from the cited passage, not from the page's top
    assert page.locator(".doc-body p").count() > 5, "paragraphs stay paragraphs"
    expect(page.locator(".doc-title")).to_have_text("多地布局_十四五_区域创新中心建设")
    assert "doc=" in page.url and "passage=" in page.url
    shot(page, "document")

    page.locator("a.back").click()
    expect(the_passage(page).first).to_be_visible()


def test_more_like_this(server: LiveServer, page: Page) -> None:
    page.goto(search_url(server, "成都超算中心"))
    first = page.locator(".results > .result").first
    first.locator("button.more").click()
    similar = first.locator(".similar .result")
    expect(similar.first).to_be_visible()
    assert similar.count() >= 2
    own = first.get_attribute("data-passage")
    assert own not in {similar.nth(i).get_attribute("data-passage") for i in range(similar.count())}
    first.locator("button.more").click()
    expect(first.locator(".similar")).to_be_hidden()


def test_filters_narrow_the_results(server: LiveServer, page: Page) -> None:
    page.goto(search_url(server, "创新"))
    expect(page.locator(".results > .result").first).to_be_visible()
    sources = set(page.locator(".results > .result .meta .source").all_inner_texts())
    assert {"证券时报网", "新华社"} <= sources

    page.locator("#f-source").select_option("新华社")
    expect(page).to_have_url(re.compile("source="))
    expect(page.locator(".results > .result").first).to_be_visible()
    expect(page.locator(".results.stale")).to_have_count(0)
    assert set(page.locator(".results > .result .meta .source").all_inner_texts()) == {"新华社"}

    page.locator("#f-clear").click()
    expect(page).not_to_have_url(re.compile("source="))
    page.locator(".results > .result", has_text="证券时报网").first.locator("button.within").click()
    expect(page).to_have_url(re.compile("doc_id="))
    expect(page.locator(".chip")).to_contain_text("多地布局")
    expect(page.locator(".results.stale")).to_have_count(0)
    titles = set(page.locator(".results > .result .title").all_inner_texts())
    assert titles == {"多地布局_十四五_区域创新中心建设"}


def test_the_url_round_trip_and_back(server: LiveServer, page: Page) -> None:
    page.goto(search_url(server, "成都超算中心"))
    expect(page.locator(".results > .result").first).to_be_visible()
    expect(page.locator("#q")).to_have_value("成都超算中心")
    expect(page.locator(".results > .result").first).to_contain_text("超算")

    page.locator("body").click(position={"x": 5, "y": 600})
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.locator("#q").fill(QUERY)
    page.keyboard.press("Enter")
    expect(the_passage(page).first).to_be_visible()

    page.go_back()
    expect(page.locator("#q")).to_have_value("成都超算中心")
    expect(page).to_have_url(re.compile("q=" + re.escape(quote("成都超算中心"))))
    expect(page.locator(".results > .result").first).to_contain_text("超算")
    page.go_forward()
    expect(page.locator("#q")).to_have_value(QUERY)

    page.goto(search_url(server, "创新", page="2"))
    expect(page.locator(".page-of")).to_contain_text("2")
    assert page.locator(".results > .result").first.get_attribute("data-passage")


def test_the_pager_stops_where_the_server_stops_paging(server: LiveServer, page: Page) -> None:
    """Past /health's max_results the server refuses an offset, so the page offers no page beyond it."""
    with server.client() as client:
        total = client.get("/search", params={"q": "创新", "k": 10}).json()["total"]
    assert total > 20, "the default corpus has more than two pages for 创新"

    def health(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "max_results": 20})

    page.route("**/health", health)
    page.goto(search_url(server, "创新", page="2"))
    expect(page.locator(".results > .result")).to_have_count(10)
    expect(page.locator(".page-of")).to_contain_text("2 / 2")
    expect(page.locator("a[rel=prev]")).to_be_visible()
    expect(page.locator("a[rel=next]")).to_have_count(0)


def test_a_page_past_the_last_says_so_and_links_back(server: LiveServer, page: Page) -> None:
    with server.client() as client:
        total = client.get("/search", params={"q": "创新", "k": 10}).json()["total"]
    page.goto(search_url(server, "创新", page="99"))
    expect(page.locator(".empty-title")).to_contain_text(str(total))
    page.locator("a.page-link.last").click()
    expect(page.locator(".results > .result").first).to_be_visible()
    expect(page.locator("a[rel=next]")).to_have_count(0)


def test_a_page_beyond_the_search_window_says_how_deep_searches_page(server: LiveServer, page: Page) -> None:
    """An edited URL asks for a page past /health's max_results: the page says so (not the server's 400)
    and links to the deepest page there is, without asking the server for what it would refuse."""
    def health(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "max_results": 20})

    page.route("**/health", health)
    searched: list[str] = []
    page.on("request", lambda r: searched.append(r.url) if "/search?" in r.url else None)
    page.goto(search_url(server, "创新", page="7"))
    expect(page.locator(".empty-title")).to_contain_text("20")
    expect(page.locator(".error")).to_have_count(0)
    assert searched == []
    page.locator("a.page-link.last").click()
    expect(page.locator(".page-of")).to_contain_text("2 / 2")
    expect(page.locator(".results > .result")).to_have_count(10)


def test_the_home_list_reads_every_document_a_page_at_a_time(server: LiveServer, page: Page) -> None:
    """The home page lists the index's documents a page at a time, with a button for the rest; here the
    page is cut to one document (the request rewritten), so that the few of the test index need it."""
    with server.client() as client:
        listed = client.get("/documents", params={"limit": 500}).json()
    assert listed["total"] >= 3

    def one_a_page(route: Route) -> None:
        route.continue_(url=route.request.url.replace("limit=50", "limit=1"))

    page.route("**/documents?*", one_a_page)
    page.goto(f"{server.url}/")
    expect(page.locator("#home-docs > li")).to_have_count(1)
    expect(page.locator("#home-more")).to_contain_text(str(listed["total"] - 1))
    for shown in range(2, listed["total"] + 1):
        page.locator("#home-more").click()
        expect(page.locator("#home-docs > li")).to_have_count(shown)
    expect(page.locator("#home-more")).to_have_count(0)
    titles = page.locator("#home-docs .doc-link").all_inner_texts()
    assert titles == [d["title"] or d["doc_id"] for d in listed["documents"]]


def test_a_server_gone_on_the_home_page_is_no_failed_search(server: LiveServer, page: Page) -> None:
    page.route("**/documents?*", lambda route: route.abort())
    page.goto(f"{server.url}/?lang=en")
    expect(page.locator("#home-docs .error")).to_contain_text("could not be loaded")
    expect(page.locator("#home-docs .error")).not_to_contain_text("search")


def test_an_index_without_metadata_shows_no_filter_bar(server: LiveServer, page: Page) -> None:
    """Files without sources, categories or dates give nothing to filter by: no bar of empty choices;
    a document filter of the URL still shows its chip there, to be removed."""
    empty = {"sources": [], "categories": [], "dates": {}}
    page.route("**/facets", lambda route: route.fulfill(json=empty))
    page.goto(search_url(server, "创新"))
    expect(page.locator(".results > .result").first).to_be_visible()
    expect(page.locator("#filters")).to_be_hidden()
    page.goto(search_url(server, "创新", doc_id=ZQSB))
    expect(page.locator("#filters .chip")).to_be_visible()
    expect(page.locator("#f-source")).to_be_hidden()


def test_the_query_box_takes_what_the_server_takes_and_the_language_carries_to_the_docs(
    server: LiveServer, page: Page
) -> None:
    with server.client() as client:
        limit = client.get("/health").json()["max_query_chars"]
    page.goto(f"{server.url}/?lang=en")
    expect(page.locator("#q")).to_have_attribute("maxlength", str(limit))
    page.locator("#q").fill("创" * (limit + 50))
    assert len(page.locator("#q").input_value()) == limit
    page.locator("#api-docs").click()
    expect(page).to_have_url(re.compile(r"/docs\?lang=en$"))


def test_a_failed_search_shows_no_answer_above_its_error(server: LiveServer, page: Page) -> None:
    """The answer is asked beside the search; when the search fails, its answer is not shown either."""
    with page.expect_response("**/ask"):
        page.goto(search_url(server, "到2025年长三角研发投入强度的目标是多少", mode="bogus"))
    expect(page.locator(".error")).to_contain_text("bogus")
    page.wait_for_timeout(300)  # the answer's rendering runs after its response
    expect(page.locator("#answer")).to_be_hidden()


def test_a_date_typed_digit_by_digit_searches_once_it_is_whole(server: LiveServer, browser) -> None:
    """A date box fires change at each digit (0002-11-29 at the year's first): no search for those."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        searched: list[str] = []
        page.on("request", lambda r: searched.append(r.url) if "/search?" in r.url else None)
        page.goto(search_url(server, "创新"))
        expect(page.locator(".results > .result").first).to_be_visible()
        page.locator("#f-from").click()
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")  # to the month, whatever part the click landed on
        page.keyboard.type("11292021")
        expect(page).to_have_url(re.compile("date_from=2021-11-29"))
        expect(page.locator(".results > .result, .empty").first).to_be_visible()
        dates = [parse_qs(urlparse(u).query).get("date_from", [""])[0] for u in searched]
        assert [d for d in dates if d] == ["2021-11-29"], dates
    finally:
        context.close()


def test_two_sources_in_the_url_stay_when_the_mode_changes(server: LiveServer, page: Page) -> None:
    page.goto(search_url(server, "创新", source="新华社") + "&source=" + quote("证券时报网"))
    expect(page.locator(".results > .result").first).to_be_visible()
    page.locator("#mode").select_option("keyword")
    expect(page).to_have_url(re.compile("mode=keyword"))
    sources = parse_qs(urlparse(page.url).query)["source"]
    assert sorted(sources) == sorted(["新华社", "证券时报网"])


def test_a_long_query_neither_widens_the_page_nor_pushes_the_results_down(
    server: LiveServer, page: Page
) -> None:
    page.set_viewport_size({"width": 1200, "height": 900})
    for query in ["innovation" * 90, "创新中心建设" * 160]:
        page.goto(search_url(server, query))
        expect(page.locator(".results > .result, .empty").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1200
        assert page.locator(".status").bounding_box()["height"] < 80


def test_empty_and_error_states(server: LiveServer, page: Page) -> None:
    page.goto(search_url(server, "创新", date_from="2030-01-01"))
    expect(page.locator(".empty")).to_contain_text("创新")
    page.goto(search_url(server, "创新", date_from="2021-13-45"))
    expect(page.locator(".error")).to_contain_text("date_from must be a date")


def test_document_html_stays_inert_text(server: LiveServer, page: Page) -> None:
    page.goto(f"{server.url}/?doc={quote(XSS_ID, safe='')}")
    body = page.locator(".doc-body")
    expect(body).to_contain_text("<script>window.__xss=1</script>")
    expect(body).to_contain_text('<img src=x onerror="window.__xss=2">')
    expect(page.locator(".doc-title")).to_have_text("<i>标题</i><script>window.__xss=3</script>")
    assert page.locator(".doc img, .doc script, .doc i").count() == 0
    page.goto(search_url(server, "window.__xss onerror", doc_id=XSS_ID))
    expect(page.locator(".results > .result .passage").first).to_contain_text("<script>")
    expect(page.locator(".results > .result .source").first).to_have_text("<b>来源</b>")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None


def test_answer_panel_shows_span_and_citations(server: LiveServer, page: Page) -> None:
    """Against the /ask response contract, mocked until the engine answers questions."""
    with server.client() as client:
        hit = next(r for r in client.get("/search", params={"q": QUERY, "k": 5}).json()["results"]
                   if "超过3%" in r["text"])
    at = hit["text"].index("超过3%")
    sentence = "到2025年长三角研发投入强度超过3%[1]。"
    span = [sentence.index("超过3%"), sentence.index("超过3%") + len("超过3%")]
    answer = {
        "question": QUERY, "answer": sentence, "answer_span": span,
        "confidence": 0.82, "passages": [],
        "citations": [{"n": 1, "passage_id": hit["passage_id"], "doc_id": hit["doc_id"],
                       "title": hit["title"], "source": hit["source"], "date": hit["date"],
                       "start": hit["start"] + at,
                       "end": hit["start"] + at + len("超过3%"), "text": "超过3%"}],
    }

    def health(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "ask": True})

    page.route("**/health", health)
    page.route("**/ask", lambda route: route.fulfill(json=answer))
    page.goto(search_url(server, QUERY))
    panel = page.locator("#answer")
    expect(panel).to_be_visible()
    expect(panel.locator("mark.answer-span")).to_have_text("超过3%")
    expect(panel.locator(".confidence")).to_contain_text("82")
    shot(page, "answer")
    panel.locator("a.cite-ref").click()
    cited = page.locator("mark.cite")
    expect(cited).to_have_text("超过3%")
    expect(cited).to_be_in_viewport()

    page.unroute("**/ask")
    page.route("**/ask", lambda route: route.fulfill(json={**answer, "answer": None, "citations": []}))
    page.goto(search_url(server, "成都"))
    expect(panel.locator(".no-answer")).to_be_visible()


def test_no_answer_panel_while_ask_is_unavailable(server: LiveServer, page: Page) -> None:
    """/ask answering 501 hides the panel; a server whose /health says it cannot answer is not asked."""
    not_built = {"error": {"code": "not_implemented", "message": "question answering is not available"}}
    page.route("**/ask", lambda route: route.fulfill(status=501, json=not_built))
    page.goto(search_url(server, QUERY))
    expect(the_passage(page).first).to_be_visible()
    expect(page.locator("#answer")).to_be_hidden()

    def health(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "ask": False})

    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/ask" in request.url else None)
    page.route("**/health", health)
    page.goto(search_url(server, "成都超算中心"))
    expect(page.locator(".results > .result").first).to_be_visible()
    expect(page.locator("#answer")).to_be_hidden()
    assert not asked, "the page does not ask a server that cannot answer"


def test_english_labels_for_english_browsers(server: LiveServer, browser) -> None:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(search_url(server, QUERY))
        expect(page.locator(".results > .result").first).to_be_visible()
        expect(page.locator("button.primary")).to_have_text("Search")
        expect(page.locator(".count")).to_contain_text("passages for")
        expect(page.locator("button.more").first).to_have_text("More like this")
    finally:
        context.close()


def test_api_docs_render_offline_under_the_page_policy(server: LiveServer, page: Page) -> None:
    """/docs is our own reference built from /openapi.json: no CDN, no console errors, no CSP violations."""
    console: list[str] = []
    elsewhere: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda request: elsewhere.append(request.url)
            if not request.url.startswith((server.url, "data:")) else None)
    page.goto(f"{server.url}/docs")
    expect(page.locator("body.ready")).to_have_count(1)

    toc = page.locator("#toc")
    search = toc.locator("a.toc-op", has=page.locator(".toc-path", has_text=re.compile(r"^/search$")))
    expect(search.locator(".method")).to_have_text("GET")
    ask = toc.locator("a.toc-op", has=page.locator(".toc-path", has_text=re.compile(r"^/ask$")))
    expect(ask.locator(".method")).to_have_text("POST")

    search.click()
    section = page.locator("#op-get-search")
    expect(section).to_be_in_viewport()
    names = section.locator(".param-name").all_inner_texts()
    assert {"q", "k", "offset", "mode", "doc_id", "source", "category", "date_from", "date_to"} <= set(names)
    expect(section.locator("tr[data-param=q]")).to_contain_text("the query, any language")
    expect(section.locator("tr[data-status='200'] a.schema-ref")).to_have_text("SearchResponse")

    body = page.locator("#op-post-ask")
    expect(body.locator(".prop-name", has_text=re.compile(r"^question$"))).to_be_visible()
    expect(body.locator(".example pre")).not_to_have_count(0)
    body.locator("tr[data-status='200'] a.schema-ref").click()
    expect(page.locator("#schema-AskResponse")).to_be_in_viewport()
    expect(page.locator("#schemas .schema")).not_to_have_count(0)
    shot(page, "apidocs")

    assert not elsewhere, f"requests to elsewhere: {elsewhere}"
    assert not console, f"console errors (CSP violations among them): {console}"


def test_screenshot_with_real_chinese_glyphs(server: LiveServer, page: Page) -> None:
    page.goto(search_url(server, QUERY))
    expect(the_passage(page).first).to_be_visible()
    expect(page.locator("#answer.pending")).to_have_count(0, timeout=60_000)  # the answer panel settled
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)  # let the loading bar fade
    # A missing font draws every Chinese character as the same box: different glyphs mean real text.
    different = page.evaluate("""() => {
        const font = getComputedStyle(document.querySelector('.passage')).fontFamily;
        const draw = (ch) => {
            const c = document.createElement('canvas'); c.width = c.height = 48;
            const g = c.getContext('2d'); g.font = `32px ${font}`; g.fillText(ch, 4, 38);
            return Array.from(g.getImageData(0, 0, 48, 48).data).join(',');
        };
        return draw('长') !== draw('角') && draw('研') !== draw('投');
    }""")
    assert different, "Chinese characters render as boxes: install fonts-wqy-microhei"
    shot(page, "screenshot")
    if os.environ.get("SEMSEARCH_UPDATE_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))


def test_a_pdf_result_shows_its_page(server: LiveServer, page: Page, tmp_path: Path) -> None:
    article = (DATA / "003_07e0a4d71f185c6b.txt").read_text(encoding="utf-8")
    body = "".join(f"<p>{line}</p>" for line in article.splitlines() if line.strip())
    html = f'<html><head><meta charset="utf-8"><title>多点支撑</title></head><body>{body}</body></html>'
    pdf = print_to_pdf(html, tmp_path / "printed.pdf")
    query = "中部地区高质量发展大幕拉开"
    with server.client() as client:
        job = client.post("/documents", files={"file": ("printed.pdf", pdf.read_bytes(), "application/pdf")},
                          params={"wait": 60}).json()
        assert job["state"] == "done", job
        hit = client.get("/search", params={"q": query, "k": 1, "doc_id": "printed.pdf"}).json()["results"][0]
    assert hit["page"] >= 2  # the phrase stands on a later page of the printed article
    page.goto(search_url(server, query, doc_id="printed.pdf"))
    label = page.locator(".result").first.locator(".pdf-page")
    expect(label).to_have_text(re.compile(rf"^(p\. {hit['page']}|第 {hit['page']} 页)$"))
    # The article marks where its pages change, and the cited passage stands after its page's mark.
    page.locator(".result").first.locator("a.title-link").click()
    marks = page.locator(".doc-body .page-mark")
    expect(marks.first).to_be_visible()
    numbers = [int(re.sub(r"\D", "", text)) for text in marks.all_inner_texts()]
    assert numbers == sorted(numbers) and numbers[0] == 1 and hit["page"] in numbers
    before_cite = page.locator(".doc-body .page-mark").filter(
        has_text=re.compile(rf"^(p\. {hit['page']}|第 {hit['page']} 页)$"))
    follows = "mark => !!(mark.compareDocumentPosition(document.getElementById('cited')) & 4)"  # FOLLOWING
    assert before_cite.evaluate(follows)
    shot(page, "pdf-article")
    with server.client() as client:
        assert client.delete("/documents/printed.pdf", params={"wait": 60}).json()["state"] == "done"


ASTRAL_ID = "astral/ext-b.txt"
EXT_B = "𠀀𪚥"  # characters beyond the BMP: one code point each, two UTF-16 units each in JavaScript
CITED = EXT_B * 5 + "引用的段落：钛合金蜂鸟出现在成都东郊，后面还有文字。"
ASTRAL_TEXT = EXT_B * 5 + "前文。" * 60 + "\n\n" + CITED + "\n\n" + "尾段。" * 60


def test_offsets_after_characters_beyond_the_bmp(server: LiveServer, page: Page) -> None:
    """The API counts offsets in characters (code points) as Python does; the page slices JavaScript
    strings (UTF-16 units), where 𠀀 counts two: marks, citations and paragraphs stay on their text."""
    with server.client() as client:
        job = client.post("/documents", params={"wait": 60},
                          json={"documents": [{"doc_id": ASTRAL_ID, "title": "扩展B", "text": ASTRAL_TEXT}]})
        assert job.json()["state"] == "done", job.text
        hit = client.get("/search", params={"q": "钛合金蜂鸟", "mode": "keyword", "doc_id": ASTRAL_ID}).json()
        answer = client.post("/ask", json={"question": "钛合金蜂鸟出现在哪里？", "doc_id": ASTRAL_ID}).json()
    passage = hit["results"][0]
    assert passage["text"] == CITED and passage["highlights"], passage
    try:
        page.goto(search_url(server, "钛合金蜂鸟", mode="keyword", doc_id=ASTRAL_ID))
        expect(page.locator(".results > .result .passage mark").first).to_have_text("钛合金蜂鸟")

        page.locator(".results > .result a.title-link").first.click()
        expect(page.locator("mark.cite")).to_have_text(CITED)
        body = page.locator(".doc-body").inner_text()
        assert body.count("前文") == 60 and body.count("尾段") == 60, "no paragraph loses its ends"

        start, end = answer["answer_span"]
        assert EXT_B in answer["answer"][:start], answer  # what this test is about: they stand before it
        page.goto(search_url(server, "钛合金蜂鸟出现在哪里？", doc_id=ASTRAL_ID))
        expect(page.locator("mark.answer-span")).to_have_text(answer["answer"][start:end])
        cited = answer["citations"][0]
        page.locator("a.cite-ref").first.click()
        expect(page.locator("mark.cite")).to_have_text(cited["text"])
    finally:
        with server.client() as client:
            client.delete(f"/documents/{ASTRAL_ID}", params={"wait": 60})
