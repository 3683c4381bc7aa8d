"""Paragraph repair: the faults of the Xinhua seed, and the same rules on synthetic Chinese and English."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from index.repair import (
    collapse_whitespace,
    ends_sentence,
    is_heading_like,
    is_unfinished,
    join_lines,
    opens_as_continuation,
    repair_paragraphs,
)

XINHUA_SEED = Path(__file__).resolve().parents[2] / "data" / "003_07e0a4d71f185c6b.txt"
# running text without a final mark: over 40 CJK characters
LONG = "这是一段足够长的正文内容，用来模拟新闻报道中的自然段落，读者可以从这样的段落里获得许多有用的信息"


def seed_paragraphs() -> list[str]:
    return re.split(r"\n\s*\n", XINHUA_SEED.read_text(encoding="utf-8"))


def non_space(texts: list[str]) -> Counter[str]:
    return Counter(c for text in texts for c in text if not c.isspace())


# --- the seed -----------------------------------------------------------------------------------------


def test_seed_breaks_are_mended() -> None:
    repaired = repair_paragraphs(seed_paragraphs())
    text = "\n\n".join(repaired)
    assert "辐射带动京津冀、长三角、珠三角等区域创新能力进一步提升" in text
    assert "成渝地区超大规模绿色数据中心、新型智能算力供应中心、数据创新应用中心" in text
    assert "科技部火炬中心目前发布的《关于深入推进创新型产业集群高质量发展的意见》明确指出" in text


def test_seed_moved_sentence_end_returns_to_its_sentence() -> None:
    repaired = repair_paragraphs(seed_paragraphs())
    (paragraph,) = [p for p in repaired if "产业共性技术研" in p]
    assert paragraph.startswith("科技部火炬中心在2021年工作要点中明确提出")
    assert paragraph.endswith(
        "引导支持集群内企业联合开展产业共性技术研发、产业链创新合作，促进大中小企业融通发展，"
        "提升我国重点产业发展质量和产业链自主可控性。扎实开展创新型产业集群统计评价，"
        "促进创新型产业集群高质量发展。"
    )
    # the paragraphs that stood between keep their places, and the fragment is gone from its old one
    i = repaired.index(paragraph)
    assert repaired[i + 1].startswith("日前，记者在成渝地区调研了解到")
    assert repaired[i + 4].startswith("“今年科技部火炬中心")
    assert repaired[i + 5].startswith("“发展创新型产业集群有助于")
    assert not any(p.startswith("发、") for p in repaired)


def test_seed_headings_and_titles_stay_apart() -> None:
    repaired = repair_paragraphs(seed_paragraphs())
    assert repaired[:3] == [
        "习近平新时代中国特色社会主义思想",
        "在指引下 ——新时代新作为新篇章",
        "多点支撑，国家区域协同创新高地加快崛起",
    ]
    for heading in [
        "A 区域协同，科创中心多点开花",
        "B 高新园区成区域发展“领头雁”",
        "C 创新型产业集群加快布局",
        "相关链接：",
        "中部地区高质量发展大幕拉开",
        "据新华社",
    ]:
        assert heading in repaired
    assert len(repaired) == 33


def test_seed_repair_keeps_every_character_and_is_idempotent() -> None:
    original = seed_paragraphs()
    repaired = repair_paragraphs(original)
    assert non_space(repaired) == non_space(original)
    assert all(p and "\n" not in p for p in repaired)
    assert repair_paragraphs(repaired) == repaired


# --- classification -------------------------------------------------------------------------------


def test_classification() -> None:
    assert ends_sentence("他说：“好。”") and ends_sentence("Done!") and ends_sentence("It ends here.")
    assert not ends_sentence("…长三角") and not ends_sentence("Section No.")
    assert is_heading_like("A 区域协同，科创中心多点开花") and is_heading_like("相关链接：")
    assert is_unfinished("“北京、上海、广东科创中心引领地位凸显，辐射带动京津冀、长三角")  # unclosed quote
    assert is_unfinished(LONG)
    assert not is_unfinished("中部地区高质量发展大幕拉开")
    for start in ("、珠三角", "，以及", "。", "）", "”他说", "information age"):
        assert opens_as_continuation(start)
    for start in ("在宜宾", "“由于", "iPhone sales", "The end", "（一）"):
        assert not opens_as_continuation(start)


# --- lines ----------------------------------------------------------------------------------------


def test_lines_join_without_space_in_cjk_and_with_space_in_latin() -> None:
    assert join_lines(["长三角", "、珠三角"]) == "长三角、珠三角"
    assert join_lines(["宜宾", "GDP增速"]) == "宜宾GDP增速"
    assert join_lines(["The quick brown", "fox jumps"]) == "The quick brown fox jumps"
    assert join_lines(["a new source of infor-", "mation for all"]) == "a new source of information for all"
    assert join_lines(["a state-of-the-", "art method"]) == "a state-of-the-art method"
    assert join_lines(["won the game, 23–", "16, in Denver"]) == "won the game, 23–16, in Denver"
    assert join_lines(["a commune –", "but with a charter"]) == "a commune – but with a charter"
    assert join_lines(["input and/", "or output"]) == "input and/or output"
    assert join_lines(["the second-", "busiest airport"], hyphenated=False) == "the second-busiest airport"
    assert join_lines(["　　缩进的行  有  空格", ""]) == "缩进的行 有 空格"
    assert collapse_whitespace("经济\n   持续恢复") == "经济持续恢复"
    assert collapse_whitespace(" A &\n B 合作 ") == "A & B 合作"


def test_lines_of_a_paragraph_are_joined() -> None:
    assert repair_paragraphs(["第一行没有结束\n第二行接着写完。"]) == ["第一行没有结束第二行接着写完。"]
    assert repair_paragraphs(["Lines of a wrapped\nEnglish paragraph."]) == [
        "Lines of a wrapped English paragraph."
    ]


def test_block_of_title_lines_stays_one_per_line() -> None:
    assert repair_paragraphs(["栏目名称\n文章主标题", LONG + "。"]) == ["栏目名称", "文章主标题", LONG + "。"]


# --- breaks between paragraphs ----------------------------------------------------------------


def test_punctuation_continuation_joins_previous() -> None:
    assert repair_paragraphs([LONG + "长三角", "、珠三角等地。"]) == [LONG + "长三角、珠三角等地。"]
    assert repair_paragraphs(["短句没有结束", "，后面接着写完。"]) == ["短句没有结束，后面接着写完。"]


def test_cjk_text_continues_an_unfinished_paragraph() -> None:
    assert repair_paragraphs([LONG + "新型", "智能算力供应中心。"]) == [LONG + "新型智能算力供应中心。"]


def test_finished_paragraphs_and_headings_are_not_joined() -> None:
    paragraphs = [LONG + "。", "下一段另起一行。", "二级标题", "标题下的正文。", "相关链接：", "链接的内容。"]
    assert repair_paragraphs(paragraphs) == paragraphs
    # a heading is never continued, even by text that cannot start a sentence
    assert repair_paragraphs(["A 区域协同", "、奇怪的开头。"]) == ["A 区域协同", "、奇怪的开头。"]


def test_fragment_goes_to_nearest_unfinished_paragraph() -> None:
    paragraphs = [
        LONG + "技术研",
        "中间完整的一段。",
        "又一段完整的话。",
        "发、产业链创新合作。",
        "后面的段落。",
    ]
    assert repair_paragraphs(paragraphs) == [
        LONG + "技术研发、产业链创新合作。",
        "中间完整的一段。",
        "又一段完整的话。",
        "后面的段落。",
    ]
    punct = [LONG + "其中", "中间完整的一段。", "、另一半句话。"]
    assert repair_paragraphs(punct) == [LONG + "其中、另一半句话。", "中间完整的一段。"]


def test_fragment_does_not_cross_a_heading() -> None:
    paragraphs = [LONG + "其中", "小标题", "中间完整的一段。", "、另一半句话。"]
    assert repair_paragraphs(paragraphs) == [LONG + "其中", "小标题", "中间完整的一段。、另一半句话。"]


def test_paragraph_starting_a_sentence_is_not_taken_as_fragment() -> None:
    paragraphs = [LONG + "技术研", "日前，记者在成渝地区调研了解到情况。", "发、产业链创新合作。"]
    assert repair_paragraphs(paragraphs) == [
        LONG + "技术研发、产业链创新合作。",
        "日前，记者在成渝地区调研了解到情况。",
    ]


def test_english_paragraph_breaks() -> None:
    text = [
        "The committee met on Tuesday and agreed that the new rules on data protection would",
        "apply from May, after a transition period of six months.",
        "Results",
        "iPhone sales rose.",
        "Growth was strong across the board this year, helped by exports of",
        "electronics and machinery.",
    ]
    assert repair_paragraphs(text) == [
        "The committee met on Tuesday and agreed that the new rules on data protection would apply from May, "
        "after a transition period of six months.",
        "Results",
        "iPhone sales rose.",
        "Growth was strong across the board this year, helped by exports of electronics and machinery.",
    ]
    assert repair_paragraphs(["A study of infor-", "mation retrieval."]) == [
        "A study of information retrieval."
    ]


def test_empty_input_and_blank_paragraphs() -> None:
    assert repair_paragraphs([]) == []
    assert repair_paragraphs(["", "  \n ", "正文。"]) == ["正文。"]


# --- properties --------------------------------------------------------------------------------------

_pieces = st.sampled_from(
    ["中国", "经济", "长三角", "研", "发", "新型", "智能", "，", "、", "。", "！", "“", "”", "（", "）", "：",
     "the", "rules", "apply", "Data", " ", "\n", "3.5", "-", "A "]
)  # fmt: skip
_paragraph = st.lists(_pieces, max_size=30).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(_paragraph, max_size=12))
def test_repair_never_loses_or_invents_characters(paragraphs: list[str]) -> None:
    repaired = repair_paragraphs(paragraphs)
    # only a hyphen at a line end may be dropped (de-hyphenation)
    before, after = non_space(paragraphs), non_space(repaired)
    assert after - before == Counter()
    assert set((before - after).elements()) <= {"-"}
    assert all(p == p.strip() and p and "\n" not in p for p in repaired)
