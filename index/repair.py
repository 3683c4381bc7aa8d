"""Repair paragraphs of text copied from web pages, page by page.

Such copies break paragraphs in the middle of a sentence, sometimes in the middle of a word, and
sometimes move the end of a sentence a few paragraphs further down. Chunks cut from such text split
sentences in two and hurt both retrieval and answer extraction, so the breaks are mended first.

The rules are about what text can do, not about particular articles:

- *finished*: a paragraph that ends with sentence-final punctuation (possibly followed by closing quotes
  or brackets) is complete; one ending with a colon introduces what follows and is left alone too.
- *prose*: long enough to be running text (about 40 CJK characters or 10 Latin words), or containing a
  sentence end before its last character, or an opening quote/bracket that is never closed. Short lines
  without final punctuation are headings, titles or bylines and are never joined to anything.
- *unfinished*: prose that is not finished.
- *continuation*: a paragraph that opens with a character no sentence can start with (`、，。；：）`, a
  closing quote, a lower-case Latin word), or with a lone character that only makes a word together with
  the end of an unfinished paragraph (`…技术研` + `发、…` = 研发), or plain CJK text right after an
  unfinished paragraph.

A continuation is appended to the nearest earlier unfinished paragraph, looking back a few paragraphs
but never across a heading; lines inside a paragraph are joined first.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from index.text import CJK_CHARS, CLOSERS, SENTENCE_FINAL, drop_invisible, is_spaceless, jieba_tokenizer

# How far (in paragraphs) a stray sentence end may have moved from the sentence it belongs to.
WINDOW = 8
# Size (CJK characters, or 4 per Latin word) from which a paragraph counts as running text.
PROSE_SIZE = 40

OPENERS = {
    "“": "”",
    "‘": "’",
    "「": "」",
    "『": "』",
    "（": "）",
    "(": ")",
    "《": "》",
    "〈": "〉",
    "【": "】",
}
# Characters that cannot open a sentence: if a paragraph starts with one, it continues something earlier.
NO_START = set("、，,。；;：:！!？?）)]】》〉」』”’%％·")

# Punctuation used in both Chinese and Western text: whether a space goes next to it depends on its neighbour.
_AMBIGUOUS = set("“”‘’…—–-·\"'")
_LOWER_WORD = re.compile(r"[a-z]+(?![A-Za-z])")
_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:['’.-][A-Za-z0-9]+)*")
_INNER_SPACE = re.compile(r"[ \t\u3000\u00a0\u2000-\u200a\u202f\u205f]+")
# "A 区域协同…", "一、总则", "（三）", "3. ", "第二章": numbered section headings.
_HEADING_MARK = re.compile(
    rf"^(?:[A-Z][\s\u3000]+(?=[{CJK_CHARS}])|[一二三四五六七八九十百]+[、.．]|[（(][一二三四五六七八九十\d]+[）)]"
    r"|\d{1,2}[、．]|第[一二三四五六七八九十百\d]+[章节条部篇编])"
)


def is_wide(char: str) -> bool:
    """CJK text or full-width punctuation: no space is ever needed next to it."""
    code = ord(char)
    return is_spaceless(char) or 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF


def _join(left: str, right: str, *, hyphenated: bool = True) -> str:
    """Join two pieces of one sentence: no space in CJK text, one space between Latin words.

    `hyphenated`: the text may break words at a line's end with a hyphen (print copied as text), so
    "infor-" + "mation" is one word; False where every hyphen is the text's own ("second-" + "busiest").
    """
    if not left or not right:
        return left + right
    if not hyphenated and re.search(r"[A-Za-z]-$", left):
        return left + right
    # "infor-" + "mation": a word hyphenated at the line end (unless it was a compound like "well-")
    if re.search(r"[A-Za-z]-$", left) and _LOWER_WORD.match(right):
        word = left.rsplit(None, 1)[-1]
        if word.count("-") == 1:
            return left[:-1] + right
        return left + right
    # A line broken after a dash or slash that is part of a word: "23–" + "16", "and/" + "or" (a dash
    # standing apart, "a commune –" + "but", keeps its space).
    if left[-1] in "–—/" and len(left) > 1 and not left[-2].isspace():
        return left + right
    before = next((c for c in reversed(left[-3:]) if c not in _AMBIGUOUS), left[-1])
    after = next((c for c in right[:3] if c not in _AMBIGUOUS), right[0])
    if is_wide(before) or is_wide(after):
        return left + right
    return f"{left} {right}"


def clean_line(line: str) -> str:
    """One line: zero-width characters removed, runs of spaces (also ideographic) collapsed."""
    return _INNER_SPACE.sub(" ", drop_invisible(line)).strip()


def join_lines(lines: list[str], *, hyphenated: bool = True) -> str:
    """Lines of one paragraph as one line (see `_join`)."""
    text = ""
    for line in lines:
        line = clean_line(line)
        if line:
            text = _join(text, line, hyphenated=hyphenated)
    return text


def collapse_whitespace(text: str) -> str:
    """Whitespace inside a paragraph of markup: dropped between CJK characters, else one space.

    Source formatting puts line breaks inside Chinese text; a space written between a Latin word and
    CJK text ("A & B 合作") is the author's and is kept.
    """

    def replace(match: re.Match[str]) -> str:
        before, after = text[match.start() - 1], text[match.end()]
        return "" if is_wide(before) and is_wide(after) else " "

    text = drop_invisible(text).strip()
    return re.sub(r"\s+", replace, text)


# --- classifying paragraphs -----------------------------------------------------------------------


def _core_end(text: str) -> str:
    """The last character that is not a closing quote or bracket."""
    stripped = text.rstrip().rstrip(CLOSERS + "\"'")
    return stripped[-1] if stripped else ""


def ends_sentence(text: str) -> bool:
    """Ends with sentence-final punctuation, possibly followed by closing quotes or brackets."""
    last = _core_end(text)
    if last == ".":
        # "...rules." ends a sentence, but not "No." or a number like "3."
        return not re.search(r"(?:\b[A-Z][a-z]?|\d)\.$", text.rstrip().rstrip(CLOSERS + "\"'"))
    return bool(last) and last in SENTENCE_FINAL


def ends_with_colon(text: str) -> bool:
    return _core_end(text) in {"：", ":"}


def _size(text: str) -> int:
    cjk = sum(1 for c in text if is_spaceless(c))
    return cjk + 4 * len(_LATIN_WORD.findall(text))


def _has_inner_sentence_end(text: str) -> bool:
    body = text.rstrip().rstrip(CLOSERS + "\"'" + SENTENCE_FINAL + ".")
    if any(c in SENTENCE_FINAL for c in body):
        return True
    return bool(re.search(r"[a-z]\.\s+[A-Z]", body))


def _unbalanced(text: str) -> bool:
    return any(text.count(o) > text.count(c) for o, c in OPENERS.items())


def is_prose(text: str) -> bool:
    """Running text rather than a heading: long, or several sentences, or an unclosed quote."""
    return _size(text) >= PROSE_SIZE or _has_inner_sentence_end(text) or _unbalanced(text)


def is_heading_like(text: str) -> bool:
    """A short line without final punctuation: a heading, title, label ("相关链接：") or byline."""
    if ends_sentence(text):
        return False
    return not is_prose(text) or (bool(_HEADING_MARK.match(text)) and not _has_inner_sentence_end(text))


def is_unfinished(text: str) -> bool:
    """Running text that stops without finishing its sentence."""
    return not ends_sentence(text) and not ends_with_colon(text) and not is_heading_like(text)


def opens_as_continuation(text: str) -> bool:
    """Starts with something no sentence starts with: `、，。；：）`, a closing quote, a lower-case word."""
    text = text.lstrip()
    if not text:
        return False
    if text[0] in NO_START:
        return True
    # "information", but not "iPhone" or "eBay", which do start sentences
    return bool(_LOWER_WORD.match(text))


# --- words across a break -------------------------------------------------------------------------


def _leading_cjk(text: str, n: int) -> str:
    out = []
    for char in text:
        if not is_spaceless(char) or len(out) == n:
            break
        out.append(char)
    return "".join(out)


def _trailing_cjk(text: str, n: int) -> str:
    return _leading_cjk(text[::-1], n)[::-1]


def completes_word(tail: str, head: str) -> bool:
    """`head` starts with a lone character that forms a word with the end of `tail` ("技术研" + "发、").

    Both sides must be dangling: the last word of `tail` and the first word of `head` are single
    characters, and a word of the dictionary spans the break. A paragraph that merely starts with a
    one-character word ("在…") after text ending in a complete word is not taken as a continuation.
    """
    left, right = _trailing_cjk(tail, 4), _leading_cjk(head, 4)
    if not left or not right:
        return False
    tokenizer = jieba_tokenizer()
    if len(tokenizer.lcut(left, HMM=False)[-1]) != 1 or len(tokenizer.lcut(head[:8], HMM=False)[0]) != 1:
        return False
    position = 0
    for token in tokenizer.lcut(left + right, HMM=False):
        if position < len(left) < position + len(token):
            return True
        position += len(token)
    return False


# --- the repair -------------------------------------------------------------------------------------


@dataclass
class _Paragraph:
    text: str
    marked: bool = False  # a heading according to the markup
    tail: int = -1  # index (in the input) of the piece that now ends this paragraph

    @property
    def protected(self) -> bool:
        """A heading by markup, or a numbered section heading ("A 区域协同…", "一、总则")."""
        return self.marked or (
            bool(_HEADING_MARK.match(self.text)) and not _has_inner_sentence_end(self.text)
        )


def _split_lines(paragraphs: list[str], headings: Collection[int]) -> list[_Paragraph]:
    """Join the lines of each paragraph, except a block of short title lines, which stay one per line."""
    units: list[_Paragraph] = []
    for index, paragraph in enumerate(paragraphs):
        lines = [clean_line(line) for line in paragraph.splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            continue
        marked = index in headings
        title_block = len(lines) > 1 and all(
            is_heading_like(line) and not opens_as_continuation(line) for line in lines
        )
        if title_block and not marked:
            units.extend(_Paragraph(line) for line in lines)
        else:
            units.append(_Paragraph(join_lines(lines), marked=marked))
    for index, unit in enumerate(units):
        unit.tail = index
    return units


def _nearest_unfinished(out: list[_Paragraph]) -> int | None:
    """Index of the nearest unfinished paragraph in the last WINDOW, not looking past a heading."""
    for j in range(len(out) - 1, max(-1, len(out) - 1 - WINDOW), -1):
        paragraph = out[j]
        if paragraph.marked or is_heading_like(paragraph.text):
            return None
        if is_unfinished(paragraph.text):
            return j
    return None


def _word_target(out: list[_Paragraph], head: str) -> int | None:
    """The nearest unfinished paragraph whose last character makes a word with the first of `head`."""
    if not head or not is_spaceless(head[0]):
        return None
    for j in range(len(out) - 1, max(-1, len(out) - 1 - WINDOW), -1):
        paragraph = out[j]
        if paragraph.marked or is_heading_like(paragraph.text):
            return None
        if is_unfinished(paragraph.text) and completes_word(paragraph.text, head):
            return j
    return None


def _claimed_later(units: list[_Paragraph], i: int, tail: str) -> bool:
    """Will a paragraph after `units[i]` continue `tail` (so that `units[i]` does not)?

    That is the case when a continuation follows within the window and everything in between is
    finished, so that `tail` would be its nearest unfinished paragraph.
    """
    for k in range(i, min(len(units), i + WINDOW)):
        text = units[k].text
        if k > i and (opens_as_continuation(text) or completes_word(tail, text)):
            return True
        if units[k].marked or is_heading_like(text) or not ends_sentence(text):
            return False
    return False


def _target(out: list[_Paragraph], units: list[_Paragraph], i: int) -> int | None:
    """Index in `out` of the paragraph that `units[i]` continues, or None if it stands on its own."""
    unit = units[i]
    if unit.marked or not out:
        return None
    previous = out[-1]
    if opens_as_continuation(unit.text):
        if not previous.protected and not ends_sentence(previous.text) and not ends_with_colon(previous.text):
            return len(out) - 1
        if (j := _nearest_unfinished(out)) is not None:
            return j
        # it cannot start a paragraph: stay with the previous one, unless that is a heading
        return None if previous.protected or is_heading_like(previous.text) else len(out) - 1
    if (j := _word_target(out, unit.text)) is not None:
        return j
    if (
        previous.tail == i - 1
        and not previous.protected
        and is_unfinished(previous.text)
        and not is_heading_like(unit.text)
        and is_spaceless(previous.text[-1])
        and (is_spaceless(unit.text[0]) or unit.text[0].isdigit())
        and not _claimed_later(units, i, previous.text)
    ):
        return len(out) - 1
    return None


def repair_paragraphs(paragraphs: list[str], *, headings: Collection[int] = ()) -> list[str]:
    """Mend paragraphs broken by a page copy (see the module docstring); a pure function.

    `headings` are indices of input paragraphs known to be headings from markup; they are never joined.
    The result has no empty paragraphs and no line breaks inside a paragraph, and repairing it again
    changes nothing: a continuation moved back over a finished paragraph gives that paragraph a new
    neighbour, so passes repeat until one changes nothing (each further pass joins, so there are few).
    """
    out = _repair_once(paragraphs, set(headings))
    for _ in range(len(out)):
        again = _repair_once([p.text for p in out], {i for i, p in enumerate(out) if p.marked})
        if [p.text for p in again] == [p.text for p in out]:
            break
        out = again
    return [paragraph.text for paragraph in out]


def _repair_once(paragraphs: list[str], headings: set[int]) -> list[_Paragraph]:
    units = _split_lines(paragraphs, headings)
    out: list[_Paragraph] = []
    for i, unit in enumerate(units):
        j = _target(out, units, i)
        if j is None:
            out.append(_Paragraph(unit.text, marked=unit.marked, tail=i))
        else:
            out[j].text = _join(out[j].text, unit.text)
            out[j].tail = i
    return out
