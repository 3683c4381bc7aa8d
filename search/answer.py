"""Extractive question answering: the part of our own passages that answers a question, in its sentence.

1. hybrid search gives the top passages (`Engine.search`);
2. the span reader (`search.reader`: the e5 encoder with layers and a span head trained here, see
   docs/answers.md) reads the first `READ_PASSAGES` of them with the question and marks, per passage, the
   best answer span and how much better that span scores than "no answer in this passage";
3. a small logistic model (`READER_WEIGHTS`, fitted by `bench/fit_reader.py` on questions the reader was
   not trained on) picks the best span over the passages and gives its calibrated confidence, times an
   entity gate (a question's names, places and numbers must stand in the passage: a sentence about
   宜宾GDP does not answer 2023年上海的GDP是多少);
4. the answer is the sentence holding the span (offsets into its document, for the citations), and
   `answer_span` the reader's span inside it; below the threshold no answer is given, only passages.

The sentence extractor is kept for `SEMSEARCH_ANSWER_READER=sentences` and for a reader whose weights
cannot be used: each sentence of the passages is scored with a logistic model over the embedding
similarity of sentence and question, the share of the question's words, bigrams and key entities in the
sentence and its passage, the passage's rank and cosine, and answer-type cues (多少 → a number with its
unit, 何时 → a date); `answer_span` is then the shortest part of the best sentence that answers. Its
weights were fitted by `bench/fit_answer.py` on the first 300 questions of CMRC 2018 dev and the first 80
of XQuAD zh.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from index import settings
from index.analysis import STOP_WORDS, analyze, normalize, term_spans
from index.documents import page_at
from index.errors import ConfigError
from index.text import CJK_RUN, has_cjk, jieba_tokenizer, split_sentences
from search.dedupe import near_duplicates, shingles
from search.models import AskResponse, Citation, SearchResult

if TYPE_CHECKING:
    from index.stores.passages import Filters
    from search.retriever import Retriever

log = logging.getLogger(__name__)

DEFAULT_K = 5
THRESHOLD_ENV = "SEMSEARCH_ANSWER_THRESHOLD"
MIN_SENTENCE_CHARS = 4  # shorter pieces (a heading word, a stray quote) never answer anything

# --- fitted constants ------------------------------------------------------------------------------
# Fitted by `python bench/fit_answer.py ../shared/eval/cmrc2018-dev ../shared/eval/xquad/zh:80 --first 300`
# (L2-regularised logistic regression, penalty 1.0) on the candidate sentences (k=5) of the first 300
# CMRC 2018 dev and the first 80 XQuAD zh questions; label: the sentence contains a gold answer.
# Order as in FEATURES. Re-run the script after changing a feature and paste its output here.
FEATURES = (
    "cos", "cos_gap", "kw", "kw_ctx", "gram", "ent", "ent_ctx", "rank", "pdense", "type_hit", "type_miss",
    "log_len",
)  # fmt: skip
RANKER_WEIGHTS = (2.538, 3.893, 3.622, -1.169, 2.472, -0.954, 0.338, 3.365, -0.101, 0.523, -1.454, 0.435)
RANKER_BIAS = -9.612
# Calibration of the best sentence: P(it contains the answer) from (its ranker logit, its margin over
# the runner-up, the key-entity share in the sentence and in its passage), fitted on the same 380.
CONFIDENCE_WEIGHTS = (0.743, 0.703, 0.369, 1.286)
CONFIDENCE_BIAS = -1.542
# Chosen on the same slice: at 0.5, 75 % of the questions are answered and 84 % of those answers hold a
# gold answer (0.4: 85 % / 79 %; 0.6: 65 % / 88 %); `bench/fit_answer.py` prints the whole curve.
SENTENCE_THRESHOLD = 0.5

NO_ANSWER_MESSAGE = (
    "no confident answer was found in the indexed documents (best confidence {confidence:.2f}, threshold "
    "{threshold:.2f}); the passages below are the closest matches"
)
NO_PASSAGES_MESSAGE = "no passage matches the question; nothing to answer from"


# --- sentences ---------------------------------------------------------------------------------------
_CLAUSE_END = re.compile(r"[，,：:、]")


# --- questions ---------------------------------------------------------------------------------------
# What kind of answer a question asks for, tried in this order (某年 questions say 哪 too, so dates first).
QUESTION_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("date", re.compile(
        r"何时|什么时候|什么时间|哪一?年(?!级)|哪个年代|哪一?天|哪个月|几月|几号|几时|哪个朝代|"
        r"\bwhen\b|\b(?:what|which) (?:year|date|day|month|century|decade|era|time)\b"
    )),
    ("number", re.compile(
        r"多少|几(?!乎)|多[大长高久远重深宽]|比例|比重|百分之|占比|增速|增长率|"
        r"\bhow (?:many|much|long|far|old|large|big|tall|high|often|fast)\b|"
        r"\bwhat (?:percentage|percent|proportion|share|number|amount|size|population|rate)\b"
    )),
    ("person", re.compile(r"谁|哪位|哪个人|哪些人|什么人|何人|\bwho\b|\bwhom\b|\bwhose\b")),
    ("place", re.compile(
        r"哪里|哪儿|何处|何地|哪个(?:国家|城市|地方|省|州|地区)|哪些(?:国家|城市|地方|地区)|\bwhere\b"
    )),
    ("which", re.compile(r"哪|\bwhich\b")),
    ("what", re.compile(r"什么|何|\bwhat\b")),
)  # fmt: skip

# Words that make a question a question: they are not content to look for in a sentence.
QUESTION_WORDS = frozenset(
    "多少 几 几个 什么 哪 哪些 哪个 哪里 哪儿 哪位 哪年 哪一年 谁 何 何时 如何 怎么 怎样 怎么样 为什么 为何 "  # noqa: SIM905
    "是否 吗 呢 么 是 有 请问 目标 时候 什么样 多 哪种 "
    "what who whom whose when where which why how mani much many did do doe does is are was were has have "
    "had can could would should name".split()
)


def question_type(question: str) -> str:
    """date, number, person, place, which, what or other: what the question asks for."""
    q = normalize(question)
    for name, pattern in QUESTION_TYPES:
        if pattern.search(q):
            return name
    return "other"


_POSSEG_LOCK = threading.Lock()
_posseg: Any = None


def _pos_cut(text: str) -> list[tuple[str, str, int]]:
    """(word, part-of-speech flag, start) from jieba's tagger (slow: only questions and one sentence)."""
    global _posseg
    if _posseg is None:
        with _POSSEG_LOCK:
            if _posseg is None:
                import jieba.posseg

                _posseg = jieba.posseg.POSTokenizer(jieba_tokenizer())  # the one dictionary
    out = []
    at = 0
    for pair in _posseg.cut(text):
        start = text.find(pair.word, at)
        if start < 0:
            start = at
        out.append((pair.word, pair.flag, start))
        at = start + len(pair.word)
    return out


_ENTITY_FLAGS = {"nr", "nrt", "nrfg", "ns", "nt", "nz", "eng"}
_TITLE = re.compile(r"《([^》]{1,40})》|“([^”]{2,20})”|\"([^\"]{2,30})\"")
_CAPITALISED = re.compile(
    r"(?<![\w.])(?:[A-Z][\w'’\-]*|[A-Z]\.)(?:\s+(?:of|the|de|von|van|and)?\s*[A-Z][\w'’\-]*)*"
)
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def key_entities(question: str) -> list[str]:
    """The question's words that an answering sentence must be about: names, places, organisations,
    titles, Latin-script terms and numbers (normalised). A sentence about 宜宾GDP does not answer a
    question about 2023年上海的GDP: 上海 and 2023 are missing from it."""
    q = normalize(question)
    found: list[str] = [n for n in _DIGITS.findall(q)]
    for m in _TITLE.finditer(question):
        found.append(normalize(next(g for g in m.groups() if g)))
    if has_cjk(question):
        for word, flag, _ in _pos_cut(question):
            w = normalize(word).strip()
            if flag in _ENTITY_FLAGS and len(w) >= 2 and w not in QUESTION_WORDS and not w.isdigit():
                found.append(w)
    else:
        # English: capitalised words after the first word (the first is capitalised anyway).
        words = question.split(maxsplit=1)
        for m in _CAPITALISED.finditer(words[1] if len(words) > 1 else ""):
            w = normalize(m.group())
            if w not in QUESTION_WORDS and w not in STOP_WORDS:
                found.append(w)
    return list(dict.fromkeys(e for e in found if e))


def content_terms(question: str) -> list[str]:
    """The question's words (jieba, stemmed English) without stop words and question words."""
    words = {t.term for t in analyze(question, grams=False)}
    return [t for t in dict.fromkeys(words) if t not in QUESTION_WORDS and t not in STOP_WORDS]


def _term_weight(term: str) -> float:
    # Longer words are rarer and say more (研发投入 vs 年); a cheap stand-in for IDF that needs no index.
    return float(min(len(term), 4)) if not term.isascii() else 2.0




def _bigrams(text: str) -> set[str]:
    out: set[str] = set()
    for run in CJK_RUN.findall(text):
        out.update(run[i : i + 2] for i in range(len(run) - 1))
    return out


_QUESTION_BIGRAMS = _bigrams("多少什么哪些哪个哪里哪儿哪位谁是几个为什么怎么如何是否")


# --- typed answers: numbers, dates, names ------------------------------------------------------------
_CN_NUM = "零〇一二两三四五六七八九十百千万亿"
_MEASURE = (
    "个百分点|百分点|亿元|万元|千元|美元|欧元|英镑|日元|港元|韩元|卢布|元|人民币|平方公里|平方千米|平方米|"
    "立方米|公里|千米|厘米|毫米|英里|英尺|米|公斤|千克|克|吨|公顷|亩|小时|分钟|秒钟|秒|周年|年|个月|月|"
    "周|天|日|岁|倍|个|家|人次|人|名|位|次|项|座|所|条|种|件|台|架|辆|艘|场|届|期|户|部|本|张|篇|首|枚|"
    "颗|株|头|只|匹|门|支|队|层|间|页|集|章|卷|册|套|批|份|类|款|处|块|分|度|升|千瓦|兆瓦|瓦|字|段|代|"
    "季|场次|局|球|码|磅|盎司|英亩|级|号|路|楼|层楼"
)
_NUMBER = re.compile(
    r"(?:超过|超|约|近|逾|达到|达|不到|不足|至少|多达|高达|仅|共|累计|将近|大约|约为|约合|上万|数)?"
    rf"(?:\d+(?:[,，]\d{{3}})*(?:\.\d+)?|[{_CN_NUM}]{{1,8}}(?:点[{_CN_NUM}]+)?)"
    r"\s?(?:多|余)?(?:万亿|千亿|百亿|十亿|亿|千万|百万|十万|万|千|百)?(?:多|余)?"
    rf"\s?(?:%|％|‰|{_MEASURE})?"
)
_EN_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|"
    "million|billion|trillion|dozen|half"
)
_EN_NUMBER = re.compile(
    r"(?<![\w.])(?:about |over |nearly |more than |less than |around |approximately )?"
    rf"(?:\$|£|€)?(?:\d+(?:,\d{{3}})*(?:\.\d+)?|(?:{_EN_NUMBER_WORDS})(?:[- ](?:{_EN_NUMBER_WORDS}))*)"
    r"(?:\s?(?:%|percent|per cent|million|billion|trillion|thousand|hundred))?(?![\w])",
    re.IGNORECASE,
)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DATE = re.compile(
    r"(?:公元前?)?\d{1,4}\s?年(?:\s?\d{1,2}\s?月)?(?:\s?\d{1,2}\s?[日号])?(?:初|末|底|中期|上半年|下半年)?|"
    r"\d{1,2}\s?月(?:\s?\d{1,2}\s?[日号])?|[零〇一二三四五六七八九]{4}年|[一二三四五六七八九十]{1,3}月"
    r"(?:[一二三四五六七八九十]{1,3}[日号])?|\d{1,2}\s?世纪(?:\s?\d0\s?年代)?|\d{2,4}\s?年代|"
    r"(?:清|明|元|宋|唐|汉|秦|晋|隋|周)朝?(?:初|末|中期)?|"
    rf"(?<![\w])(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+(?:{_MONTHS})\.?\s+\d{{4}}|"
    rf"(?:{_MONTHS})\.?\s+\d{{4}}|(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?|"
    r"\d{1,2}(?:st|nd|rd|th) century|\d{4}s|(?:1\d|20)\d{2})(?![\w])",
    re.IGNORECASE,
)
_SCORE = re.compile(r"(?<![\d.])\d{1,3}\s?[–\-－:：比]\s?\d{1,3}(?![\d.%])")
_PERSON_FLAGS = {"nr", "nrt", "nrfg", "nt", "nz"}
_ORG_SUFFIXES = ("队", "公司", "集团", "大学", "学院", "俱乐部", "委员会", "协会", "银行", "乐队", "组织")
_PLACE_FLAGS = {"ns"}
_WHICH_FLAGS = {"nr", "nrt", "nrfg", "nt", "ns", "nz"}


def _regex_spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    spans = []
    for m in pattern.finditer(text):
        start, end = m.span()
        while end > start and text[end - 1].isspace():
            end -= 1
        if end - start == 0:
            continue
        piece = m.group().strip()
        # A lone Chinese numeral without a unit is a word (一方面, 十四五), not an amount.
        if pattern is _NUMBER and not re.search(r"\d", piece) and len(piece) < 2:
            continue
        spans.append((start, end))
    return spans


def typed_spans(sentence: str, qtype: str, *, tagged: bool = True) -> list[tuple[int, int]]:
    """Where `sentence` holds something of the asked type: numbers with units, dates, names, places.

    `tagged=False` skips the part-of-speech tagger (names and places are then not looked for): it is the
    cheap form used for every candidate sentence, the tagged form only for the answer sentence.
    """
    if qtype == "number":
        scores = [m.span() for m in _SCORE.finditer(sentence)]  # 比分 20–18: one answer, not two numbers
        inside = [(s, e) for s, e in _regex_spans(_NUMBER, sentence) + _regex_spans(_EN_NUMBER, sentence)
                  if not any(a <= s and e <= b for a, b in scores)]
        return scores + inside
    if qtype == "date":
        return _regex_spans(_DATE, sentence)
    if qtype in ("person", "place", "which") and tagged:
        flags = {"person": _PERSON_FLAGS, "place": _PLACE_FLAGS, "which": _WHICH_FLAGS}[qtype]
        spans: list[tuple[int, int]] = []
        if CJK_RUN.search(sentence):
            tagged_words = _pos_cut(sentence)
            spans += [(s, s + len(w)) for w, f, s in tagged_words if f in flags and len(w) >= 2]
            spans += [m.span() for m in re.finditer(r"《[^》]{1,40}》", sentence)]
            if qtype != "place":
                # Transliterated names (约翰·埃尔维) and teams/organisations (匹兹堡 + 钢人队): jieba tags
                # neither as names, and 谁 questions are often answered by an organisation.
                spans += _dotted_names(tagged_words)
                for i, (w, _, s) in enumerate(tagged_words):
                    if len(w) >= 2 and w.endswith(_ORG_SUFFIXES):
                        prev = tagged_words[i - 1] if i else None
                        begin = prev[2] if prev and prev[1] in _WHICH_FLAGS | {"n"} else s
                        spans.append((begin, s + len(w)))
        spans += [m.span() for m in _CAPITALISED.finditer(sentence) if len(m.group()) > 1]
        return spans
    return []


def _dotted_names(words: list[tuple[str, str, int]]) -> list[tuple[int, int]]:
    """约翰·埃尔维: the words on both sides of each middle dot, joined (chains of several dots too)."""
    spans: list[tuple[int, int]] = []
    for i in range(1, len(words) - 1):
        left, right = words[i - 1][0], words[i + 1][0]
        if words[i][0] in ("·", "・", "•") and CJK_RUN.fullmatch(left) and CJK_RUN.fullmatch(right):
            begin, end = words[i - 1][2], words[i + 1][2] + len(words[i + 1][0])
            if spans and spans[-1][1] == words[i - 1][2] + len(words[i - 1][0]):
                begin = spans.pop()[0]
            spans.append((begin, end))
    return spans


def _in_question(piece: str, question_norm: str) -> bool:
    """Whether an answer candidate just repeats the question (2025年 in a question about 2025)."""
    norm = normalize(piece).replace(" ", "")
    if norm in question_norm:
        return True
    grams = _bigrams(norm)
    if not _DIGITS.search(norm) and grams and len(grams & _bigrams(question_norm)) * 2 >= len(grams):
        return True  # mostly the question's own name (由约翰 for a question about 约翰·埃尔维)
    digits = _DIGITS.findall(norm)
    return bool(digits) and all(d in question_norm for d in digits)


# --- candidates and features -------------------------------------------------------------------------
@dataclass
class Candidate:
    """One sentence of a retrieved passage, with its features and score."""

    result: SearchResult
    start: int  # offsets into the passage text
    end: int
    features: dict[str, float] = field(default_factory=dict)
    logit: float = 0.0

    @property
    def text(self) -> str:
        return self.result.text[self.start : self.end]

    @property
    def doc_start(self) -> int:
        return self.result.start + self.start


@dataclass
class Question:
    """What is known about a question before reading any passage."""

    text: str
    norm: str
    qtype: str
    terms: list[str]
    weights: dict[str, float]
    entities: list[str]
    bigrams: set[str]

    @classmethod
    def parse(cls, question: str) -> Question:
        terms = content_terms(question)
        norm = normalize(question)
        return cls(
            text=question,
            norm=norm,
            qtype=question_type(question),
            terms=terms,
            weights={t: _term_weight(t) for t in terms},
            entities=key_entities(question),
            bigrams=_bigrams(norm) - _QUESTION_BIGRAMS,
        )


def _share(found: set[str], weights: dict[str, float]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in found) / total if total else 0.0


def _entity_share(entities: Sequence[str], text_norm: str) -> float:
    if not entities:
        return 1.0
    flat = text_norm.replace(" ", "")
    return sum(1 for e in entities if e.replace(" ", "") in flat) / len(entities)


def candidates(engine: Retriever, question: Question, results: Sequence[SearchResult]) -> list[Candidate]:
    """Every sentence of the retrieved passages with its features (embeddings in one batch)."""
    cands: list[Candidate] = []
    for rank, r in enumerate(results, start=1):
        passage_norm = normalize(r.text)
        context_norm = normalize(r.title or "") + " " + passage_norm
        # One analysis per passage; each sentence takes the terms that fall inside it.
        tokens = analyze(r.text, grams=False)
        passage_terms = {t.term for t in tokens}
        kw_ctx = _share(passage_terms, question.weights)
        ent_ctx = _entity_share(question.entities, context_norm)
        num_ctx = 1.0 if _numbers_found(question.entities, context_norm) else 0.0
        for start, end in split_sentences(r.text):
            sentence = r.text[start:end]
            if len(CJK_RUN.sub("xx", sentence).strip()) < MIN_SENTENCE_CHARS:
                continue
            sent_terms = {t.term for t in tokens if t.start >= start and t.end <= end}
            sent_norm = passage_norm[start:end]
            if question.bigrams:
                gram = len(question.bigrams & _bigrams(sent_norm)) / len(question.bigrams)
            else:
                gram = _share(sent_terms, question.weights)
            typed = question.qtype in ("number", "date")
            hit = typed and any(
                not _in_question(sentence[s:e], question.norm)
                for s, e in typed_spans(sentence, question.qtype, tagged=False)
            )
            cands.append(
                Candidate(
                    result=r,
                    start=start,
                    end=end,
                    features={
                        "kw": _share(sent_terms, question.weights),
                        "kw_ctx": kw_ctx,
                        "gram": gram,
                        "ent": _entity_share(question.entities, sent_norm),
                        "ent_ctx": ent_ctx,
                        "num_ctx": num_ctx,  # for the gate, not a ranker feature
                        "rank": 1.0 / rank,
                        "pdense": float(r.dense_score or 0.0),
                        "type_hit": 1.0 if hit else 0.0,
                        "type_miss": 1.0 if typed and not hit else 0.0,
                        "log_len": math.log1p(len(sentence)),
                    },
                )
            )
    if not cands:
        return cands
    q_vec = engine.embedder.encode_queries([question.text])[0]
    s_vecs = engine.embedder.encode_passages([c.text for c in cands])
    cosines = s_vecs @ q_vec
    best = float(cosines.max())
    for c, cos in zip(cands, cosines, strict=True):
        c.features["cos"] = float(cos)
        c.features["cos_gap"] = float(cos) - best
    return cands


def feature_matrix(cands: Sequence[Candidate]) -> np.ndarray:
    return np.asarray([[c.features[f] for f in FEATURES] for c in cands], dtype=np.float64)


def score(cands: list[Candidate]) -> list[Candidate]:
    """Give each candidate its ranker logit; best first (ties: the earlier-ranked passage)."""
    if not cands:
        return cands
    logits = feature_matrix(cands) @ np.asarray(RANKER_WEIGHTS) + RANKER_BIAS
    for c, z in zip(cands, logits, strict=True):
        c.logit = float(z)
    return sorted(cands, key=lambda c: -c.logit)


def confidence_features(ranked: Sequence[Candidate]) -> list[float]:
    best = ranked[0]
    margin = best.logit - ranked[1].logit if len(ranked) > 1 else 5.0
    return [best.logit, min(margin, 5.0), best.features["ent"], best.features["ent_ctx"]]


def confidence(ranked: Sequence[Candidate]) -> float:
    """Probability that the best candidate holds the answer: the calibration model's output, times an
    entity gate of 0.5 + 0.5 × the share of the question's key entities found in the candidate's passage
    and title (and NUMBER_GATE where one of its numbers is not there).

    A sentence about 宜宾GDP does not answer 2023年上海的GDP是多少 however similar it reads. The dev sets
    have (almost) only answerable questions, so the fitted model alone barely learns this; on the fitting
    slice the best sentences missing a key entity were right 0.50 of the time against 0.81 for the others,
    a ratio the gate roughly matches (a missing entity is also often a spelling variant, so not 0).
    """
    z = float(np.dot(confidence_features(ranked), CONFIDENCE_WEIGHTS) + CONFIDENCE_BIAS)
    best = ranked[0].features
    return _gated(best["ent_ctx"], best.get("num_ctx", 1.0) > 0) / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


# A confidence's factor where a number of the question (a year, a day, a count) is in neither the passage
# nor its title. The question then asks about another year or event than the passage tells of (到2030年 of
# a plan for 2025): over the first 250 questions of XQuAD zh, en, en2zh and news, the same questions with
# one number changed were answered 68-90 % of the time under the name gate alone, 0-13 % at 0.4, while the
# real questions kept their answers but for three of xquad/en (a season named only in the article's title
# passage). docs/answers.md, "Numbers the passage does not hold".
NUMBER_GATE = 0.4


def _numbers_found(entities: Sequence[str], text_norm: str) -> bool:
    flat = text_norm.replace(" ", "")
    return all(e in flat for e in entities if _DIGITS.fullmatch(e))


def _gated(entity_share: float, numbers_found: bool = True) -> float:
    """The entity gate of a confidence: 0.5 + 0.5 × the share of the question's key entities found, times
    NUMBER_GATE where one of its numbers is missing."""
    return (0.5 + 0.5 * entity_share) * (1.0 if numbers_found else NUMBER_GATE)


# --- the span inside the answer sentence -------------------------------------------------------------
_LEADING_GLUE = re.compile(r"^[\s，,：:、。；;“”\"'（）()的是为了即乃由被在于将把和与及]+")
_TRAILING_GLUE = re.compile(r"[\s，,：:、。；;“”\"'（）()的了]+$")


def answer_span(sentence: str, question: Question) -> tuple[int, int] | None:
    """The shortest part of `sentence` that answers: a number with its unit, a date, a name, else the
    clause after the words the question already has. None when nothing smaller than the sentence fits."""
    matched = term_spans(sentence, question.terms) if question.terms else []
    typed = [
        (s, e)
        for s, e in typed_spans(sentence, question.qtype)
        if not _in_question(sentence[s:e], question.norm)
    ]
    # A name inside a longer one (埃尔维 in 约翰·埃尔维) is not an answer of its own.
    typed = [a for a in typed if not any(b != a and b[0] <= a[0] and a[1] <= b[1] for b in typed)]
    if typed:
        unit = _asked_unit(question.norm)

        def closeness(span: tuple[int, int]) -> tuple[bool, int, int]:
            # In the unit asked for first (多少公里 → 364.6公里, not 一条), then nearest the question's words.
            s, e = span
            dist = min((min(abs(s - me), abs(ms - e)) for ms, me in matched), default=0)
            return (not (unit and sentence[s:e].rstrip().endswith(unit)), dist, -s)

        return min(typed, key=closeness)
    return _clause_span(sentence, matched)


def _asked_unit(question_norm: str) -> str | None:
    """The measure word a question asks in (多少个 → 个, 多少公里 → 公里, 几号 → 号, 多少亿元 → 元)."""
    m = re.search(rf"(?:多少|几)\s?(?:万|亿)?({_MEASURE})", question_norm)
    if m is None or m.group(1) in ("人", "年"):  # so common in any sentence that they say little
        return None
    return m.group(1)


def _clause_span(sentence: str, matched: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The text after the question's words within their clause (or the next clause), trimmed."""
    if not matched:
        return None
    clauses: list[tuple[int, int]] = []
    at = 0
    for m in _CLAUSE_END.finditer(sentence):
        clauses.append((at, m.start()))
        at = m.end()
    clauses.append((at, len(sentence)))
    # The clause holding most of the question's words is where the question "is"; the answer is the rest
    # of that clause after its last matched word, else the next clause, else the text before the match.
    def hits(c: tuple[int, int]) -> int:
        return sum(min(e, c[1]) - max(s, c[0]) for s, e in matched if s < c[1] and e > c[0])

    best = max(range(len(clauses)), key=lambda i: (hits(clauses[i]), -i))
    cs, ce = clauses[best]
    last = max((e for s, e in matched if cs <= s < ce), default=cs)
    first = min((s for s, e in matched if cs <= s < ce), default=ce)
    for span in ((last, ce), clauses[best + 1] if best + 1 < len(clauses) else (ce, ce), (cs, first)):
        trimmed = _trim(sentence, *span)
        if trimmed is not None:
            return trimmed
    return None


def _trim(sentence: str, start: int, end: int) -> tuple[int, int] | None:
    piece = sentence[start:end]
    lead = _LEADING_GLUE.match(piece)
    tail = _TRAILING_GLUE.search(piece)
    s = start + (lead.end() if lead else 0)
    e = end - (len(tail.group()) if tail else 0)
    if e - s < 2 or (s, e) == (0, len(sentence)):
        return None
    return s, e


# --- citations ---------------------------------------------------------------------------------------
def _citation(
    n: int, r: SearchResult | Any, meta: dict[str, Any], start: int, end: int, text: str
) -> Citation:
    return Citation(
        n=n,
        passage_id=r.passage_id,
        doc_id=r.doc_id,
        title=meta.get("title") or r.doc_id,
        source=meta.get("source"),
        date=meta.get("date"),
        page=page_at(meta.get("pages"), start),
        start=start,
        end=end,
        text=text,
    )


def citations_for(engine: Retriever, best: Candidate) -> list[Citation]:
    """[1] the answer sentence in its passage; [2]… the same sentence in near-identical passages folded
    into that result (`also_in`), located in their own documents."""
    r = best.result
    sentence = best.text
    meta: dict[str, Any] = {"title": r.title, "source": r.source, "date": r.date}
    if r.page is not None:  # a PDF: the sentence may stand on a later page than its passage starts
        meta = engine.passages_with_documents([r.passage_id])[1].get(r.doc_id, meta)
    out = [_citation(1, r, meta, best.doc_start, best.doc_start + len(sentence), sentence)]
    if not r.also_in:
        return out
    rows, metas = engine.passages_with_documents([a.passage_id for a in r.also_in])
    grams = shingles(sentence)
    for a in r.also_in:
        row = rows.get(a.passage_id)
        if row is None:
            continue
        at = row.text.find(sentence)
        if at >= 0:
            span = (at, at + len(sentence))
        else:
            # The copy was edited a little: the sentence of the other passage sharing most 4-grams.
            def overlap(s: tuple[int, int], text: str = row.text) -> int:
                return len(grams & shingles(text[s[0] : s[1]]))

            spans = split_sentences(row.text)
            span = max(spans, key=overlap, default=None)
            if span is None or not _same_sentence(grams, shingles(row.text[span[0] : span[1]])):
                continue
        text = row.text[span[0] : span[1]]
        meta = metas.get(row.doc_id, {})
        out.append(_citation(len(out) + 1, row, meta, row.start + span[0], row.start + span[1], text))
    return out


def _same_sentence(a: set[str], b: set[str]) -> bool:
    # A sentence is much shorter than a passage: the passage-level minimum of shared shingles is too strict.
    shared = len(a & b)
    return near_duplicates(a, b) or (shared >= 5 and shared / max(1, min(len(a), len(b))) >= 0.6)


# --- the answer --------------------------------------------------------------------------------------
def reader_in_use() -> bool:
    """Whether answers come from the span reader (the default) rather than the sentence extractor."""
    return not _reader_failed and settings.value("SEMSEARCH_ANSWER_READER") == "reader"


def threshold_from_env(reader: bool | None = None) -> float:
    """The confidence below which no answer is given: $SEMSEARCH_ANSWER_THRESHOLD, else the default of
    the answer path (`reader`, else the one in use): each path's confidence is calibrated on its own."""
    from search.errors import QueryError

    try:
        value = settings.value(THRESHOLD_ENV)
    except ConfigError as exc:  # read per question, and answered as that request's error
        raise QueryError(str(exc)) from None
    if value is not None:
        return float(value)
    return DEFAULT_THRESHOLD if (reader_in_use() if reader is None else reader) else SENTENCE_THRESHOLD


def retrieve(
    engine: Retriever, question: str, k: int, filters: Filters | None
) -> list[SearchResult]:
    """The passages an answer is read from: hybrid search where the index has keywords, else dense."""
    return engine.search(question, k=k, filters=filters).results


def ask(
    engine: Retriever,
    question: str,
    k: int = DEFAULT_K,
    *,
    filters: Filters | None = None,
    threshold: float | None = None,
) -> AskResponse:
    """Answer `question` from the top-`k` passages: the reader's span in its sentence, or null when no
    answer is confident. Without the reader's weights, the best sentence of the sentence extractor."""
    from search.errors import check_query

    question = check_query(question)
    results = retrieve(engine, question, k, filters)
    if not results:
        return AskResponse(question=question, answer=None, confidence=0.0, message=NO_PASSAGES_MESSAGE)
    parsed = Question.parse(question)
    read = _read(parsed, results)
    if read is not None:
        best, span, conf = read
    else:  # the reader is switched off or its weights cannot be used
        ranked = score(candidates(engine, parsed, results))
        if not ranked:
            return AskResponse(
                question=question, answer=None, confidence=0.0, passages=list(results),
                message=NO_PASSAGES_MESSAGE,
            )
        best, conf = ranked[0], confidence(ranked)
        span = answer_span(best.text, parsed)
    threshold = threshold_from_env(reader=read is not None) if threshold is None else threshold
    if conf < threshold:
        return AskResponse(
            question=question,
            answer=None,
            confidence=round(conf, 4),
            passages=list(results),
            message=NO_ANSWER_MESSAGE.format(confidence=conf, threshold=threshold),
        )
    return AskResponse(
        question=question,
        answer=best.text,
        answer_span=span,
        confidence=round(conf, 4),
        citations=citations_for(engine, best),
        passages=list(results),
    )


# --- the reader --------------------------------------------------------------------------------------
# How many of the retrieved passages the reader reads: each costs one pass of the encoder over up to 320
# tokens; the first passage holds a gold answer for 95 % of the XQuAD zh questions, the first five for
# 99 % (answer@1, answer@5 in docs/quality.md).
READ_PASSAGES = 3
# Calibration of the reader's best span: P(its sentence holds a gold answer) from (span score minus the
# passage's no-answer score, the margin over the best span of another passage, 1/rank of the passage,
# the span's share of the softmax over all spans read). Fitted by `python bench/fit_reader.py` on the 675
# questions of the documents held out from training (CMRC 2018 dev and DRCD dev, L2 penalty 1); re-run it
# after retraining the reader and paste its output here.
READER_FEATURES = ("gap", "margin", "rank", "prob")
READER_WEIGHTS = (0.180, 0.122, 3.899, 0.873)
READER_BIAS = -4.167
# The default threshold of the reader's confidence, chosen by `bench/fit_reader.py` on the same questions
# as the lowest at which 90 % of the answers given hold a gold answer: at 0.45, 95.9 % of them are answered
# and 90.6 % of the answers are right (0.4: 97.3 % / 89.9 %; 0.5: 94.8 % / 90.6 %), for the reader of ten
# trained layers (docs/answers.md).
DEFAULT_THRESHOLD = 0.45
_reader_failed = False


def _read(
    question: Question, results: Sequence[SearchResult]
) -> tuple[Candidate, tuple[int, int], float] | None:
    """The reader's best span over the first READ_PASSAGES passages: its sentence, the span inside the
    sentence, and the calibrated confidence. None when the reader's weights cannot be used."""
    global _reader_failed
    from search.errors import ReaderUnavailable
    from search.reader import shipped_reader

    if not reader_in_use():
        return None
    try:
        reader = shipped_reader()
    except ReaderUnavailable as exc:
        _reader_failed = True
        log.warning("%s; answers come from the sentence extractor until the server restarts", exc)
        return None
    read = list(results[:READ_PASSAGES])
    spans = reader.read(question.text, [r.text for r in read])
    if not spans:
        return None
    features = reader_features(spans)
    z = features @ np.asarray(READER_WEIGHTS) + READER_BIAS
    best_i = int(np.argmax(z))
    span = spans[best_i]
    result = read[span.passage]
    sentence = _sentence_around(result.text, span.start, span.end)
    cand = Candidate(result=result, start=sentence[0], end=sentence[1])
    conf = entity_gate(question, result) / (1.0 + math.exp(-max(-30.0, min(30.0, float(z[best_i])))))
    return cand, (span.start - sentence[0], span.end - sentence[0]), conf


def entity_gate(question: Question, result: SearchResult) -> float:
    """0.5 + 0.5 × the share of the question's key entities found in the passage and its title, times
    NUMBER_GATE where a number of the question is not there (see `confidence`). An English question over
    Chinese text is gated by its numbers alone: its names cannot be matched by spelling, digits can."""
    context = normalize(result.title or "") + " " + normalize(result.text)
    numbers_found = _numbers_found(question.entities, context)
    if not has_cjk(question.text) and has_cjk(result.text):
        return 1.0 if numbers_found else NUMBER_GATE
    return _gated(_entity_share(question.entities, context), numbers_found)


def reader_features(spans: Sequence[Any]) -> np.ndarray:
    """One row of READER_FEATURES per span read (the passage order is the retrieval order)."""
    scores = np.asarray([s.score for s in spans], dtype=np.float64)
    nulls = np.asarray([s.null_score for s in spans], dtype=np.float64)
    logits = np.concatenate([scores, [float(np.max(nulls))]])
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    rows = []
    for i, s in enumerate(spans):
        others = np.delete(scores, i)
        margin = float(s.score - others.max()) if others.size else 5.0
        rows.append([s.score - s.null_score, min(max(margin, -10.0), 10.0), 1.0 / (s.passage + 1), probs[i]])
    return np.asarray(rows, dtype=np.float64)


def _sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence(s) of `text` that hold the characters start:end."""
    spans = split_sentences(text)
    first = next((s for s in spans if s[0] <= start < s[1]), None)
    last = next((s for s in spans if s[0] < end <= s[1]), None)
    if first is None or last is None:
        return start, end
    return first[0], max(last[1], first[1])
