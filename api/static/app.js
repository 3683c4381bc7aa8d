/* The search page: plain JavaScript over the JSON API, no build step, nothing loaded from elsewhere.

   Rule of this file: text that comes from documents or the API is inserted as text (textContent,
   Node.append of strings), never as HTML. The corpus contains HTML, and it must stay inert.

   The page state lives in the URL (?q=, mode, filters, page; ?doc=&passage= for the document view),
   so every view can be shared, reloaded, and reached again with Back and Forward. */
'use strict';

(() => {
  const PAGE_SIZE = 10;
  const QUERY_SHOWN = 80; // characters of the query the result count repeats
  const SIMILAR_K = 5;
  // Words too common to be worth highlighting when the server sends no highlights of its own.
  const STOP = new Set(['什么', '多少', '哪些', '如何', '怎么', '怎样', '为什么', '是否', '可以', '的是', '是什么',
    'the', 'of', 'and', 'or', 'to', 'in', 'is', 'are', 'a', 'an', 'what', 'which', 'how', 'for', 'on', 'by']);

  // --- language --------------------------------------------------------------------------------
  const LANG = (() => {
    const asked = new URLSearchParams(location.search).get('lang');
    if (asked === 'zh' || asked === 'en') return asked;
    const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    return (langs[0] || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  })();
  const STRINGS = window.I18N[LANG] || window.I18N.en;

  /** A label, with {name} placeholders filled in. */
  function t(key, vars) {
    let text = STRINGS[key] !== undefined ? STRINGS[key] : window.I18N.en[key];
    if (typeof text !== 'string') return key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (vars[name] !== undefined ? String(vars[name]) : m));
    return text;
  }

  // --- small DOM helpers (text only): api/static/dom.js ------------------------------------------
  const { $, el, langOf, HAN } = window.SemsearchDom;

  /** Append text; a paragraph break inside it (a passage may span paragraphs) becomes a small
      pilcrow, which keeps a result compact and still shows where one paragraph ends. */
  function appendText(parent, text) {
    const parts = text.split(/\n+/);
    parts.forEach((part, i) => {
      if (i > 0) parent.append(el('span', { class: 'pbreak', 'aria-hidden': 'true', text: '¶' }), ' ');
      if (part) parent.append(document.createTextNode(part));
    });
  }

  /** The API's offsets count characters (code points, as Python does); a JavaScript string counts UTF-16
      units, two for a character beyond the BMP (𠀀, an emoji). `unitIndex(text)` maps an offset of the
      API into `text` to its index here (clipped to the text's ends); `.count` is the API's length. */
  function unitIndex(text) {
    const clip = (offset, length) => Math.min(Math.max(0, offset), length);
    if (!/[\uD800-\uDBFF]/.test(text)) {  // no character beyond the BMP: the two counts agree
      return Object.assign((offset) => clip(offset, text.length), { count: text.length });
    }
    const units = [0];
    for (const ch of text) units.push(units[units.length - 1] + ch.length);
    const at = (offset) => units[clip(offset, units.length - 1)];
    return Object.assign(at, { count: units.length - 1 });
  }

  /** The API's [start, end] spans of `text` as indices of the JavaScript string. */
  function unitSpans(text, spans) {
    const at = unitIndex(text);
    return (spans || []).map(([s, e]) => [at(Number(s)), at(Number(e))]);
  }

  /** Sorted spans clipped to [0, length], with overlapping and touching ones merged
      (so "研发" + "投入" become one mark "研发投入"). */
  function mergeSpans(spans, length) {
    const clean = (spans || [])
      .map(([s, e]) => [Math.max(0, Number(s)), Math.min(length, Number(e))])
      .filter(([s, e]) => Number.isFinite(s) && Number.isFinite(e) && e > s)
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const out = [];
    for (const span of clean) {
      const last = out[out.length - 1];
      if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
      else out.push([...span]);
    }
    return out;
  }

  /** Append `text` with the `spans` wrapped in <mark class="cls">; returns the marks. */
  function appendMarked(parent, text, spans, cls) {
    const marks = [];
    let at = 0;
    for (const [s, e] of mergeSpans(spans, text.length)) {
      if (s > at) appendText(parent, text.slice(at, s));
      const mark = el('mark', { class: cls || null });
      appendText(mark, text.slice(s, e));
      parent.append(mark);
      marks.push(mark);
      at = e;
    }
    if (at < text.length) appendText(parent, text.slice(at));
    return marks;
  }

  /** Where the query's words stand in `text`, for results that come without server highlights.
      Chinese has no spaces, so each run of Han characters in the query is covered greedily by the
      longest pieces (two characters or more) that occur in the text; other words match whole. */
  function querySpans(text, query) {
    const spans = [];
    const lower = text.toLowerCase();
    const addAll = (needle, haystack) => {
      for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) {
        spans.push([i, i + needle.length]);
      }
    };
    const runs = query.match(/\p{Script=Han}+|[\p{L}\p{N}][\p{L}\p{N}\p{M}'’-]*/gu) || [];
    for (const run of runs) {
      if (HAN.test(run)) {
        let i = 0;
        while (i < run.length - 1) {
          let end = 0;
          for (let j = run.length; j >= i + 2; j -= 1) {
            if (text.includes(run.slice(i, j))) { end = j; break; }
          }
          if (!end) { i += 1; continue; }
          const piece = run.slice(i, end);
          if (!STOP.has(piece)) addAll(piece, text);
          i = end;
        }
      } else {
        const word = run.toLowerCase();
        if ((word.length < 2 && !/\d/.test(word)) || STOP.has(word)) continue;
        for (let i = lower.indexOf(word); i >= 0; i = lower.indexOf(word, i + word.length)) {
          const before = lower[i - 1] || ' ';
          const after = lower[i + word.length] || ' ';
          if (!/[\p{L}\p{N}]/u.test(before) && !/[\p{L}\p{N}]/u.test(after)) spans.push([i, i + word.length]);
          else if (HAN.test(before) || HAN.test(after)) spans.push([i, i + word.length]); // "2025年"
        }
      }
    }
    return mergeSpans(spans, text.length);
  }

  // --- the API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** JSON from the API; errors carry the API's own message (`{"error": {"code", "message"}}`). */
  async function api(path, options = {}) {
    const init = { headers: { Accept: 'application/json' }, signal: options.signal };
    if (options.body !== undefined) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === 'AbortError') throw error;
      throw new ApiError(0, 'network', t('networkError'));
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.error;
      throw new ApiError(response.status, (detail && detail.code) || 'error',
        (detail && detail.message) || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  // --- URL state -------------------------------------------------------------------------------
  const FILTER_KEYS = ['source', 'category', 'doc_id'];

  function readState() {
    const p = new URLSearchParams(location.search);
    const int = (name) => {
      const value = parseInt(p.get(name) || '', 10);
      return Number.isFinite(value) ? value : null;
    };
    return {
      q: (p.get('q') || '').trim(),
      mode: p.get('mode') || '',
      page: Math.max(1, int('page') || 1),
      source: p.getAll('source').filter(Boolean),
      category: p.getAll('category').filter(Boolean),
      doc_id: p.getAll('doc_id').filter(Boolean),
      date_from: p.get('date_from') || '',
      date_to: p.get('date_to') || '',
      doc: p.get('doc'),
      passage: int('passage'),
      start: int('start'),
      end: int('end'),
      lang: p.get('lang'),
    };
  }

  /** The query string of a state, in a stable order, without empty values. */
  function stateQuery(state, extra) {
    const p = new URLSearchParams();
    const s = { ...state, ...(extra || {}) };
    if (s.q) p.set('q', s.q);
    if (s.mode) p.set('mode', s.mode);
    for (const key of FILTER_KEYS) for (const v of s[key] || []) p.append(key, v);
    if (s.date_from) p.set('date_from', s.date_from);
    if (s.date_to) p.set('date_to', s.date_to);
    if (s.page && s.page > 1) p.set('page', String(s.page));
    if (s.doc) p.set('doc', s.doc);
    if (s.doc && s.passage !== null && s.passage !== undefined) p.set('passage', String(s.passage));
    if (s.doc && s.start !== null && s.start !== undefined && s.end !== null && s.end !== undefined) {
      p.set('start', String(s.start));
      p.set('end', String(s.end));
    }
    if (s.lang) p.set('lang', s.lang);
    return p;
  }

  function urlOf(state, extra) {
    const query = stateQuery(state, extra).toString();
    return query ? `/?${query}` : '/';
  }

  function hasFilters(state) {
    return FILTER_KEYS.some((k) => state[k].length) || Boolean(state.date_from || state.date_to);
  }

  /** Go to a state: a new history entry (so Back returns), then render it. */
  function navigate(state, { replace = false } = {}) {
    const url = urlOf(state);
    const here = location.pathname + location.search;
    // Remember where this page was scrolled to, for when Back returns to it.
    history.replaceState({ ...(history.state || {}), scroll: window.scrollY }, '');
    if (replace) history.replaceState({ from: history.state && history.state.from }, '', url);
    else if (url !== here) history.pushState({ from: here }, '', url);
    render(readState());
  }

  /** A link to a state that the page handles itself (a plain click), but that also opens in a tab. */
  function link(state, attrs, ...children) {
    const a = el('a', { ...attrs, href: urlOf(state) }, ...children);
    a.addEventListener('click', (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      navigate(state);
    });
    return a;
  }

  function docState(base, docId, passageId, range) {
    return {
      ...base, doc: docId, passage: passageId === undefined ? null : passageId,
      start: range ? range[0] : null, end: range ? range[1] : null,
    };
  }

  // --- shared page parts ---------------------------------------------------------------------------
  const view = {
    home: $('home'), answer: $('answer'), status: $('status'), results: $('results'), pager: $('pager'),
    doc: $('doc'), progress: $('progress'), filters: $('filters'),
  };
  let info = null; // /health
  let facets = null; // /facets
  let failedSearch = null; // the signal of the search that failed, so its answer is not shown
  let askAvailable = true; // false once /ask said 501 (or /health said so)
  let current = null; // AbortController of the view being loaded
  let progressTimer = null;

  function busy(on) {
    clearTimeout(progressTimer);
    if (on) {
      // shown only if loading takes a moment, so fast answers do not flicker
      progressTimer = setTimeout(() => { view.progress.hidden = false; }, 120);
      document.body.setAttribute('aria-busy', 'true');
    } else {
      view.progress.hidden = true;
      document.body.removeAttribute('aria-busy');
    }
  }

  function show(which) {
    view.home.hidden = which !== 'home';
    view.doc.hidden = which !== 'doc';
    view.results.hidden = which !== 'results';
    view.status.hidden = which !== 'results';
    if (which !== 'results') {
      view.answer.hidden = true;
      view.pager.hidden = true;
    }
    view.filters.hidden = which === 'doc' || !facets || !hasFacets();
  }

  /** Whether the index has anything to filter by: a source, a category or a date (or a document
      filter is on, whose chip lives in the bar). An index of files without metadata shows no bar. */
  function hasFacets() {
    const dates = facets.dates || {};
    return Boolean(facets.sources.length || facets.categories.length || dates.from || dates.to
      || readState().doc_id.length);
  }

  function clear(node) {
    node.replaceChildren();
  }

  function errorBox(title, error) {
    return el('div', { class: 'error', role: 'alert' },
      el('strong', { text: title }),
      el('p', { text: error.message || String(error) }));
  }

  function applyLabels() {
    document.documentElement.lang = LANG === 'zh' ? 'zh-CN' : 'en';
    // a language chosen in the URL carries over to the API reference, which reads ?lang the same way
    const asked = new URLSearchParams(location.search).get('lang');
    if (asked === 'zh' || asked === 'en') $('api-docs').href = `/docs?lang=${asked}`;
    for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll('[data-i18n-placeholder]')) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    for (const node of document.querySelectorAll('[data-i18n-aria-label]')) {
      node.setAttribute('aria-label', t(node.dataset.i18nAriaLabel));
    }
  }

  // --- header: search box, mode, filters ---------------------------------------------------------------
  const input = $('q');
  const modeSelect = $('mode');
  const sourceSelect = $('f-source');
  const categorySelect = $('f-category');
  const fromInput = $('f-from');
  const toInput = $('f-to');

  function fillSelect(select, values, chosen) {
    clear(select);
    select.append(el('option', { value: '', text: t('all') }));
    const known = new Set();
    for (const item of values) {
      known.add(item.value);
      select.append(el('option', { value: item.value, text: `${item.value} (${item.documents})` }));
    }
    for (const value of chosen) if (!known.has(value)) select.append(el('option', { value, text: value }));
    select.value = chosen[0] || '';
  }

  function syncHeader(state) {
    input.value = state.q;
    if (facets) {
      fillSelect(sourceSelect, facets.sources, state.source);
      fillSelect(categorySelect, facets.categories, state.category);
      // a filter with no choice is left out (one chosen in the URL is still shown, to be removed)
      sourceSelect.closest('.filter').hidden = !facets.sources.length && !state.source.length;
      categorySelect.closest('.filter').hidden = !facets.categories.length && !state.category.length;
      fromInput.closest('.filter').hidden = !(facets.dates && (facets.dates.from || facets.dates.to))
        && !state.date_from && !state.date_to;
      for (const box of [fromInput, toInput]) {
        box.min = (facets.dates && facets.dates.from) || '';
        box.max = (facets.dates && facets.dates.to) || '';
      }
    }
    fromInput.value = state.date_from;
    toInput.value = state.date_to;
    if (modeSelect.options.length) modeSelect.value = state.mode;
    renderChips(state);
  }

  /** The document filters as removable chips, and "clear filters" when any filter is on. */
  function renderChips(state) {
    const chips = $('f-docs');
    clear(chips);
    for (const docId of state.doc_id) {
      const label = el('span', { class: 'chip', title: docId });
      const name = el('span', { class: 'chip-label', text: t('inDocument', { title: docTitles.get(docId) || docId }) });
      const remove = el('button', {
        type: 'button', class: 'chip-x', 'aria-label': t('removeFilter'), title: t('removeFilter'), text: '×',
        onclick: () => navigate({ ...readState(), doc_id: state.doc_id.filter((d) => d !== docId), page: 1 }),
      });
      label.append(name, remove);
      chips.append(label);
    }
    $('f-clear').hidden = !hasFilters(state);
  }

  function chosen(select, values) {
    if (select.value === (values[0] || '')) return values;
    return select.value ? [select.value] : [];
  }

  /** A new search from the header's current values (page 1). */
  function searchFromHeader() {
    const state = readState();
    navigate({
      ...state,
      q: input.value.trim(),
      mode: modeSelect.hidden ? state.mode : modeSelect.value,
      // a select shows one value; a URL may hold several, kept until that select is changed
      source: chosen(sourceSelect, state.source),
      category: chosen(categorySelect, state.category),
      date_from: fromInput.value,
      date_to: toInput.value,
      page: 1,
      doc: null,
      passage: null,
      start: null,
      end: null,
    });
  }

  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    searchFromHeader();
  });
  function filtersChanged() {
    if (input.value.trim()) searchFromHeader();
    else syncHeaderFilterButton();
  }
  for (const control of [modeSelect, sourceSelect, categorySelect]) control.addEventListener('change', filtersChanged);
  for (const [box, key] of [[fromInput, 'date_from'], [toInput, 'date_to']]) {
    // Typing a date fires change at every digit: 0002-11-29 at the year's first, '' at the next. Search
    // at once for a whole date (the picker's, or the year's fourth digit), else when the box is left.
    box.addEventListener('change', () => {
      if (/^[1-9]\d{3}-\d\d-\d\d$/.test(box.value) || (!box.value && document.activeElement !== box)) filtersChanged();
    });
    box.addEventListener('blur', () => {
      if (box.value !== (readState()[key] || '')) filtersChanged();
    });
  }
  function syncHeaderFilterButton() {
    $('f-clear').hidden = !(sourceSelect.value || categorySelect.value || fromInput.value || toInput.value);
  }
  $('f-clear').addEventListener('click', () => {
    navigate({ ...readState(), source: [], category: [], doc_id: [], date_from: '', date_to: '', page: 1 });
  });
  $('brand').addEventListener('click', (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey) return;
    event.preventDefault();
    navigate({ ...readState(), q: '', page: 1, doc: null, passage: null, start: null, end: null });
  });

  // "/" focuses the search box from anywhere (except while typing in a field).
  document.addEventListener('keydown', (event) => {
    if (event.key !== '/' || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing = target instanceof HTMLElement
      && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
    if (typing) return;
    event.preventDefault();
    input.focus();
    input.select();
  });

  // --- results -------------------------------------------------------------------------------------
  const docTitles = new Map(); // doc_id -> title, for the filter chips

  function scoreTitle(r) {
    const parts = [t('scoreTitle', { score: r.score.toFixed(3) })];
    if (r.dense_score !== null && r.dense_score !== undefined) {
      parts.push(`${t('dense')} ${r.dense_score.toFixed(3)}${r.dense_rank ? ` (${t('rank')} ${r.dense_rank})` : ''}`);
    }
    if (r.sentence_score !== null && r.sentence_score !== undefined) {
      parts.push(`${t('sentence')} ${r.sentence_score.toFixed(3)}`);
    }
    if (r.keyword_score !== null && r.keyword_score !== undefined) {
      parts.push(`${t('keyword')} ${r.keyword_score.toFixed(3)}${r.keyword_rank ? ` (${t('rank')} ${r.keyword_rank})` : ''}`);
    }
    if (r.word_share !== null && r.word_share !== undefined) {
      parts.push(t('words', { pct: Math.round(r.word_share * 100) }));
    }
    return parts.join(' · ');
  }

  function metaLine(r, extra) {
    const meta = el('div', { class: 'meta' });
    const items = [];
    if (r.source) items.push(el('span', { class: 'source', text: r.source, lang: langOf(r.source) }));
    if (r.date) items.push(el('time', { datetime: r.date, text: r.date }));
    if (r.page) items.push(el('span', { class: 'pdf-page', text: t('pdfPage', { n: r.page }) }));
    for (const item of extra || []) items.push(item);
    items.forEach((item, i) => {
      if (i) meta.append(el('span', { class: 'dot', 'aria-hidden': 'true', text: '·' }));
      meta.append(item);
    });
    return meta;
  }

  /** One result: title, meta, the passage with its matches marked, and its actions. */
  function resultItem(r, state, query, { compact = false } = {}) {
    docTitles.set(r.doc_id, r.title);
    const target = docState(state, r.doc_id, r.passage_id);
    const li = el('li', { class: compact ? 'result compact' : 'result', 'data-passage': r.passage_id });
    const title = r.title || r.doc_id || t('untitled');
    li.append(el(compact ? 'h4' : 'h3', { class: 'title' },
      link(target, { class: 'title-link', lang: langOf(title) }, title)));
    const score = el('span', { class: 'score', title: scoreTitle(r), text: r.score.toFixed(3) });
    li.append(metaLine(r, [score]));

    const passage = el('p', { class: 'passage', lang: langOf(r.text) });
    const spans = r.highlights && r.highlights.length
      ? unitSpans(r.text, r.highlights) : querySpans(r.text, query);
    appendMarked(passage, r.text, spans);
    li.append(passage);

    if (r.also_in && r.also_in.length) {
      const also = el('p', { class: 'also-in' }, el('span', { class: 'also-label', text: t('alsoIn') }));
      for (const other of r.also_in) {
        docTitles.set(other.doc_id, other.title);
        also.append(' ', link(docState(state, other.doc_id, other.passage_id), { lang: langOf(other.title) },
          other.title || other.doc_id));
      }
      li.append(also);
    }
    if (compact) return li;

    const similar = el('div', { class: 'similar', hidden: true });
    const more = el('button', { type: 'button', class: 'action more', 'aria-expanded': 'false', text: t('moreLike') });
    more.addEventListener('click', () => toggleSimilar(r, state, more, similar));
    const within = el('button', {
      type: 'button', class: 'action within', text: t('searchInArticle'),
      onclick: () => navigate({ ...readState(), doc_id: [r.doc_id], page: 1 }),
    });
    const actions = el('div', { class: 'actions' },
      more,
      link(target, { class: 'action open' }, t('openInArticle')),
      state.doc_id.length === 1 && state.doc_id[0] === r.doc_id ? null : within);
    li.append(actions, similar);
    return li;
  }

  async function toggleSimilar(r, state, button, box) {
    if (!box.hidden) {
      box.hidden = true;
      button.textContent = t('moreLike');
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    box.hidden = false;
    button.textContent = t('hideSimilar');
    button.setAttribute('aria-expanded', 'true');
    if (box.dataset.loaded) return;
    clear(box);
    box.append(el('p', { class: 'muted', text: t('similarLoading') }));
    try {
      const data = await api('/similar', { body: { passage_id: r.passage_id, k: SIMILAR_K } });
      clear(box);
      box.append(el('h4', { class: 'section-label', text: t('similarTitle') }));
      if (!data.results.length) box.append(el('p', { class: 'muted', text: t('similarNone') }));
      const list = el('ol', { class: 'similar-list' });
      for (const other of data.results) list.append(resultItem(other, state, state.q, { compact: true }));
      box.append(list);
      box.dataset.loaded = '1';
    } catch (error) {
      clear(box);
      box.append(errorBox(t('loadErrorTitle'), error));
    }
  }

  function searchParams(state, offset) {
    const p = new URLSearchParams({ q: state.q, k: String(PAGE_SIZE), offset: String(offset) });
    if (state.mode) p.set('mode', state.mode);
    for (const key of FILTER_KEYS) for (const v of state[key]) p.append(key, v);
    if (state.date_from) p.set('date_from', state.date_from);
    if (state.date_to) p.set('date_to', state.date_to);
    return p;
  }

  function filterBody(state) {
    const body = {};
    for (const key of FILTER_KEYS) if (state[key].length) body[key] = state[key];
    if (state.date_from) body.date_from = state.date_from;
    if (state.date_to) body.date_to = state.date_to;
    return body;
  }

  async function runSearch(state, signal) {
    show('results');
    document.title = `${state.q} · semsearch`;
    const offset = (state.page - 1) * PAGE_SIZE;
    view.results.classList.add('stale');
    clear(view.status);
    view.status.append(el('span', { class: 'muted', text: t('searching') }));
    if (offset === 0 && askAvailable) askQuestion(state, signal); // in parallel; never waited for
    else view.answer.hidden = true;
    const window_ = info?.max_results ?? Infinity;
    if (offset + PAGE_SIZE > window_) {
      // A page the pager never offers (an edited URL): say how deep searches page, not the server's 400.
      view.answer.hidden = true;
      clear(view.results);
      view.results.classList.remove('stale');
      clear(view.status);
      view.status.append(el('div', { class: 'empty' },
        el('p', { class: 'empty-title', text: t('pastWindow', { max: window_ }) }),
        el('p', {}, link({ ...state, page: Math.max(1, Math.floor(window_ / PAGE_SIZE)) },
          { class: 'page-link last' }, t('lastPage')))));
      view.pager.hidden = true;
      return;
    }
    let data;
    try {
      data = await api(`/search?${searchParams(state, offset)}`, { signal });
    } catch (error) {
      if (error.name === 'AbortError') return;
      failedSearch = signal;
      view.answer.hidden = true; // an answer above "the search failed" would read as the search's
      clear(view.results);
      view.results.classList.remove('stale');
      clear(view.status);
      view.status.append(errorBox(t('errorTitle'), error));
      view.pager.hidden = true;
      return;
    }
    view.results.classList.remove('stale');
    clear(view.results);
    clear(view.status);
    if (!data.results.length && offset > 0 && data.total > 0) {
      // past the last page (near-duplicates folded as the pages were read, so total can shrink)
      const last = Math.max(1, Math.ceil(Math.min(data.total, info?.max_results ?? Infinity) / PAGE_SIZE));
      view.status.append(el('div', { class: 'empty' },
        el('p', { class: 'empty-title', text: t('pastLastPage', { total: data.total }) }),
        el('p', {}, link({ ...state, page: Math.min(last, state.page - 1) }, { class: 'page-link last' },
          t('lastPage')))));
      view.pager.hidden = true;
      return;
    }
    if (!data.results.length) {
      const filtered = hasFilters(state);
      view.status.append(el('div', { class: 'empty' },
        el('p', { class: 'empty-title', text: t(filtered ? 'noResultsFiltered' : 'noResults', { q: state.q }) }),
        el('p', { class: 'muted', text: t('tryOther') })));
      view.pager.hidden = true;
      return;
    }
    const from = data.offset + 1;
    const to = data.offset + data.results.length;
    // a long query in full would push the results down the screen; the box above holds all of it
    const chars = Array.from(data.query); // code points, so a character beyond the BMP is not cut in two
    const shown = chars.length > QUERY_SHOWN ? `${chars.slice(0, QUERY_SHOWN).join('')}…` : data.query;
    view.status.append(el('span', { class: 'count', title: data.query, text: t('resultsCount', { from, to, total: data.total, q: shown }) }));
    for (const r of data.results) view.results.append(resultItem(r, state, data.query));
    renderPager(state, data);
    renderChips(state); // the titles of filtered documents are known now
  }

  function renderPager(state, data) {
    clear(view.pager);
    // A search pages only so deep (/health's max_results); past it the server refuses the offset.
    const reachable = Math.min(data.total, info?.max_results ?? Infinity);
    const pages = Math.max(1, Math.ceil(reachable / PAGE_SIZE));
    const hasNext = data.offset + data.results.length < reachable && data.results.length === PAGE_SIZE;
    if (state.page <= 1 && !hasNext) {
      view.pager.hidden = true;
      return;
    }
    view.pager.hidden = false;
    const prev = state.page > 1
      ? link({ ...state, page: state.page - 1 }, { class: 'page-link prev', rel: 'prev' }, t('prev'))
      : el('span', { class: 'page-link disabled', text: t('prev') });
    const next = hasNext
      ? link({ ...state, page: state.page + 1 }, { class: 'page-link next', rel: 'next' }, t('next'))
      : el('span', { class: 'page-link disabled', text: t('next') });
    view.pager.append(prev, el('span', { class: 'page-of', text: t('page', { page: state.page, pages }) }), next);
  }

  // --- the answer panel ----------------------------------------------------------------------------
  /** Ask the question behind the query; the panel appears only if /ask exists and answers. */
  async function askQuestion(state, signal) {
    // A quiet line while the answer is worked out, so the results do not jump when it arrives.
    clear(view.answer);
    view.answer.className = 'answer quiet pending';
    view.answer.append(el('p', { class: 'pending-note', text: t('answering') }));
    view.answer.hidden = false;
    let data;
    try {
      data = await api('/ask', { body: { question: state.q, ...filterBody(state) }, signal });
    } catch (error) {
      if (error.status === 501 || error.status === 404) askAvailable = false;
      if (!signal.aborted) view.answer.hidden = true;
      return; // the results are the page; a failed answer is not worth an error box
    }
    if (signal.aborted) return;
    if (failedSearch === signal) {
      view.answer.hidden = true;
      return;
    }
    clear(view.answer);
    view.answer.classList.remove('pending');
    if (!data || !data.answer) {
      view.answer.append(el('p', { class: 'no-answer', text: t('noAnswer') }));
      view.answer.classList.add('quiet');
      view.answer.hidden = false;
      return;
    }
    view.answer.classList.remove('quiet');
    const citations = new Map((data.citations || []).map((c) => [Number(c.n), c]));
    const head = el('div', { class: 'answer-head' }, el('h2', { text: t('answer') }));
    if (typeof data.confidence === 'number') {
      head.append(el('span', { class: 'confidence', text: t('confidence', { pct: Math.round(data.confidence * 100) }) }));
    }
    const body = el('p', { class: 'answer-text', lang: langOf(data.answer) });
    const span = Array.isArray(data.answer_span) ? unitSpans(data.answer, [data.answer_span]) : [];
    appendMarked(body, data.answer, span, 'answer-span');
    if (!/\[\d+\]/.test(data.answer)) {
      // an extracted answer carries no [n] marks of its own: cite its sources after it
      for (const n of citations.keys()) body.append(`[${n}]`);
    }
    linkCitations(body, citations, state);
    view.answer.append(head, body);
    if (citations.size) {
      const list = el('ol', { class: 'citations' });
      for (const c of citations.values()) {
        const target = docState(state, c.doc_id, c.passage_id, [c.start, c.end]);
        list.append(el('li', {},
          el('span', { class: 'cite-n', text: `[${c.n}]` }), ' ',
          link(target, { lang: langOf(c.title), title: t('citeTitle', { n: c.n }) }, c.title || c.doc_id),
          c.source ? el('span', { class: 'muted', text: ` · ${c.source}` }) : null,
          c.date ? el('span', { class: 'muted', text: ` · ${c.date}` }) : null,
          c.page ? el('span', { class: 'muted pdf-page', text: ` · ${t('pdfPage', { n: c.page })}` }) : null));
      }
      view.answer.append(list);
    }
    view.answer.hidden = false;
  }

  /** Turn "[n]" in the answer's text nodes into links that open citation n in its article. */
  function linkCitations(root, citations, state) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (const node of nodes) {
      const text = node.nodeValue;
      const pattern = /\[(\d+)\]/g;
      if (!pattern.test(text)) continue;
      pattern.lastIndex = 0;
      const fragment = document.createDocumentFragment();
      let at = 0;
      for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
        const c = citations.get(Number(m[1]));
        if (!c) continue;
        fragment.append(text.slice(at, m.index));
        const target = docState(state, c.doc_id, c.passage_id, [c.start, c.end]);
        fragment.append(link(target, { class: 'cite-ref', title: t('citeTitle', { n: c.n }) }, `[${c.n}]`));
        at = m.index + m[0].length;
      }
      fragment.append(text.slice(at));
      node.replaceWith(fragment);
    }
  }

  // --- the document view ------------------------------------------------------------------------------
  const TERMINAL = /[。！？!?.;；:：…”」』）)]$/;

  async function showDocument(state, signal) {
    show('doc');
    clear(view.doc);
    view.doc.append(el('p', { class: 'muted', text: '…' }));
    let doc;
    try {
      doc = await api(`/documents/${encodeURIComponent(state.doc).replace(/%2F/g, '/')}`, { signal });
    } catch (error) {
      if (error.name === 'AbortError') return;
      clear(view.doc);
      view.doc.append(backLink(state), errorBox(t('docErrorTitle'), error));
      return;
    }
    docTitles.set(doc.doc_id, doc.title);
    document.title = `${doc.title || doc.doc_id} · semsearch`;
    clear(view.doc);

    // The cited range: the exact start/end when given (an answer's citation), else the passage's. Every
    // offset of the document (the API's, and the URL's, which are the API's) becomes a string index once.
    const at = unitIndex(doc.text);
    let cite = null;
    const passages = doc.passages || [];
    const index = passages.findIndex((p) => p.passage_id === state.passage);
    if (state.start !== null && state.end !== null && state.start >= 0 && state.end > state.start
        && state.end <= at.count) cite = [at(state.start), at(state.end)];
    else if (index >= 0) cite = [at(passages[index].start), at(passages[index].end)];

    const header = el('header', { class: 'doc-head' });
    header.append(backLink(state));
    header.append(el('h1', { class: 'doc-title', lang: langOf(doc.title), text: doc.title || doc.doc_id || t('untitled') }));
    const extra = [];
    if (doc.author && doc.author !== doc.source) extra.push(el('span', { text: t('by', { author: doc.author }) }));
    for (const c of doc.categories || []) extra.push(el('span', { class: 'tag', text: c }));
    if (doc.url && /^https?:\/\//i.test(doc.url)) {
      extra.push(el('a', { href: doc.url, rel: 'noopener noreferrer nofollow', target: '_blank', text: t('original') }));
    }
    header.append(metaLine(doc, extra));
    if (index >= 0) {
      header.append(el('p', { class: 'doc-cite-note' },
        el('span', { class: 'cite-swatch', 'aria-hidden': 'true' }),
        `${t('citedPassage')} · ${t('passageOf', { n: index + 1, total: passages.length })}`));
    }
    view.doc.append(header);

    const body = el('div', { class: 'doc-body', lang: langOf(doc.text) });
    const paragraphs = doc.paragraphs && doc.paragraphs.length
      ? doc.paragraphs.map(([s, e]) => [at(s), at(e)]) : [[0, doc.text.length]];
    // A PDF: a mark where the page changes, so a citation's "p. 3" can be found in the text.
    const pages = doc.pages && doc.pages.length > 1 ? doc.pages.map(at) : [];
    const pageAt = (offset) => pages.filter((pageStart) => pageStart <= offset).length;
    let shownPage = 0;
    let first = null;
    for (const [start, end] of paragraphs) {
      if (pages.length && pageAt(start) !== shownPage) {
        shownPage = pageAt(start);
        body.append(el('div', { class: 'page-mark', role: 'separator', text: t('pdfPage', { n: shownPage }) }));
      }
      const text = doc.text.slice(start, end);
      const short = text.length <= 24 && !TERMINAL.test(text) && !/\n/.test(text);
      const p = el('p', { class: short ? 'subhead' : null });
      let spans = [];
      if (cite && cite[0] < end && cite[1] > start) {
        spans = [[Math.max(cite[0], start) - start, Math.min(cite[1], end) - start]];
        p.classList.add('has-cite');
      }
      // A page that begins inside the paragraph gets its mark where it begins.
      const bounds = [start, ...pages.filter((pageStart) => pageStart > start && pageStart < end), end];
      for (let i = 0; i + 1 < bounds.length; i += 1) {
        const [from, to] = [bounds[i] - start, bounds[i + 1] - start];
        if (i > 0) {
          shownPage = pageAt(bounds[i]);
          p.append(el('span', { class: 'page-mark inline', role: 'separator', text: t('pdfPage', { n: shownPage }) }));
        }
        const pieceSpans = spans.map(([s, e]) => [Math.max(s, from) - from, Math.min(e, to) - from]);
        const marks = appendMarked(p, text.slice(from, to), pieceSpans, 'cite');
        if (!first && marks.length) first = marks[0];
      }
      body.append(p);
    }
    view.doc.append(body);
    if (first) {
      first.id = 'cited';
      first.setAttribute('tabindex', '-1');
      // after layout, so the passage lands mid-screen and not under the sticky header
      requestAnimationFrame(() => {
        first.scrollIntoView({ block: 'center' });
        first.focus({ preventScroll: true }); // a keyboard user goes on reading from the cited passage
      });
    } else {
      window.scrollTo(0, 0);
    }
  }

  function backLink(state) {
    const results = { ...state, doc: null, passage: null, start: null, end: null };
    return el('a', {
      class: 'back',
      href: urlOf(results),
      text: state.q ? t('back') : t('backHome'),
      onclick: (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        // Came here from those results: go back in history, so Forward returns to this article.
        if (history.state && history.state.from === urlOf(results)) history.back();
        else navigate(results);
      },
    });
  }

  // --- home ----------------------------------------------------------------------------------------------
  const HOME_PAGE = 50; // documents listed at a time
  async function showHome(signal) {
    show('home');
    document.title = 'semsearch';
    const title = $('home-title');
    title.textContent = info ? t('homeTitle', { passages: info.passages, documents: info.documents })
      : t('homeTitleEmpty');
    const list = $('home-docs');
    if (list.dataset.generation === (info && info.generation)) return;
    try {
      const data = await api(`/documents?limit=${HOME_PAGE}`, { signal });
      clear(list);
      appendDocuments(list, data);
      list.dataset.generation = (info && info.generation) || '';
    } catch (error) {
      if (error.name !== 'AbortError') list.replaceChildren(el('li', {}, errorBox(t('loadErrorTitle'), error)));
    }
  }

  /** Append a page of `GET /documents` to the home list, and a button for the next page while the
      index holds more (a list of thousands of documents is read a page at a time). */
  function appendDocuments(list, data) {
    const old = $('home-more');
    if (old) old.remove();
    for (const d of data.documents) {
      docTitles.set(d.doc_id, d.title);
      const state = { ...readState(), doc: d.doc_id, passage: null };
      const extra = [el('span', { text: t('passages', { n: d.passages }) })];
      list.append(el('li', {},
        link(state, { class: 'doc-link', lang: langOf(d.title) }, d.title || d.doc_id),
        metaLine(d, extra)));
    }
    const shown = list.querySelectorAll('li').length;
    if (!data.documents.length || shown >= data.total) return;
    const more = el('button', {
      type: 'button', id: 'home-more', class: 'action home-more',
      text: t('moreDocuments', { n: Math.min(HOME_PAGE, data.total - shown), left: data.total - shown }),
    });
    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        appendDocuments(list, await api(`/documents?offset=${shown}&limit=${HOME_PAGE}`));
      } catch (error) {
        more.replaceWith(errorBox(t('loadErrorTitle'), error));
      }
    });
    list.after(more);
  }

  // --- rendering a state -----------------------------------------------------------------------------------
  /** Show a state; `scroll` is the position to return to (Back), else the top (or the cited passage). */
  function render(state, scroll) {
    if (current) current.abort();
    current = new AbortController();
    const { signal } = current;
    syncHeader(state);
    busy(true);
    let work;
    if (state.doc) work = showDocument(state, signal);
    else if (state.q) work = runSearch(state, signal);
    else work = showHome(signal);
    Promise.resolve(work).finally(() => {
      if (signal.aborted) return;
      busy(false);
      if (!state.doc && typeof scroll === 'number') window.scrollTo(0, scroll);
    });
    if (!state.doc && typeof scroll !== 'number') window.scrollTo(0, 0);
  }

  history.scrollRestoration = 'manual'; // results are fetched again, so the page restores the position
  window.addEventListener('popstate', (event) => render(readState(), event.state && event.state.scroll));

  async function start() {
    applyLabels();
    const state = readState();
    input.value = state.q;
    input.focus();
    // Health and facets fill in the mode choice, the filters and the footer; the page works without them.
    const [health, found] = await Promise.allSettled([api('/health'), api('/facets')]);
    if (health.status === 'fulfilled') {
      info = health.value;
      if (info.ask === false) askAvailable = false;
      if (info.max_query_chars) input.maxLength = info.max_query_chars;
      const modes = info.modes || ['dense'];
      clear(modeSelect);
      // '' = the server's default (hybrid where the index has keywords), kept out of the URL
      modeSelect.append(el('option', { value: '', text: t('modeDefault') }));
      for (const m of modes) modeSelect.append(el('option', { value: m, text: (STRINGS.modes || {})[m] || m }));
      modeSelect.hidden = modes.length < 2;
      $('foot-info').textContent = t('footInfo', { model: info.model, generation: info.generation });
    }
    if (found.status === 'fulfilled') {
      facets = found.value;
      view.filters.dataset.ready = '1';
    }
    render(readState());
  }

  start();
})();
