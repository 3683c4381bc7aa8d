/* The API reference at /docs: /openapi.json rendered as a plain page, with nothing loaded from elsewhere
   (Swagger UI fetches its assets from a CDN, and many of our users are offline).

   Rule of this file, as in app.js: text from the schema is inserted as text (textContent, Node.append
   of strings), never as HTML. The page runs under the same strict policy as the search page: no inline
   script or style. */
'use strict';

(() => {
  // --- language: like the search page, navigator.language or ?lang=zh / ?lang=en ------------------
  const LANG = (() => {
    const asked = new URLSearchParams(location.search).get('lang');
    if (asked === 'zh' || asked === 'en') return asked;
    const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    return (langs[0] || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  })();

  const LABELS = {
    en: {
      pageTitle: 'API reference',
      endpoints: 'Endpoints',
      schemas: 'Schemas',
      loading: 'Loading the API description…',
      loadError: 'The API description cannot be loaded',
      networkError: 'The server cannot be reached. Is it still running?',
      parameters: 'Parameters',
      noParameters: 'No parameters.',
      requestBody: 'Request body',
      responses: 'Responses',
      name: 'Name',
      in: 'In',
      type: 'Type',
      description: 'Description',
      status: 'Status',
      schema: 'Schema',
      required: 'required',
      optional: 'optional',
      bodyRequired: 'Required.',
      bodyOptional: 'Optional.',
      example: 'Example',
      default: 'default {value}',
      range: 'range {value}',
      oneOf: 'one of {value}',
      auth: 'Authentication',
      keyRequired: 'key required',
      authNone: 'No key required by this server.',
      authScheme: '{name}: {kind}',
      authSchemes: 'Authentication schemes',
      bearer: 'HTTP bearer token — header “Authorization: Bearer <key>”',
      undescribed: 'not described in this schema',
      noProperties: 'No properties.',
      backHome: '← Search',
      raw: 'OpenAPI JSON',
      where: { query: 'query', path: 'path', header: 'header', cookie: 'cookie' },
    },
    zh: {
      pageTitle: 'API 文档',
      endpoints: '接口',
      schemas: '数据结构',
      loading: '正在加载 API 描述…',
      loadError: '无法加载 API 描述',
      networkError: '无法连接服务器，请确认服务仍在运行。',
      parameters: '参数',
      noParameters: '无参数。',
      requestBody: '请求体',
      responses: '响应',
      name: '名称',
      in: '位置',
      type: '类型',
      description: '说明',
      status: '状态码',
      schema: '结构',
      required: '必填',
      optional: '可选',
      bodyRequired: '必填。',
      bodyOptional: '可选。',
      example: '示例',
      default: '默认 {value}',
      range: '范围 {value}',
      oneOf: '取值 {value}',
      auth: '认证',
      keyRequired: '需要密钥',
      authNone: '此服务器不要求密钥。',
      authScheme: '{name}：{kind}',
      authSchemes: '认证方式',
      bearer: 'HTTP Bearer 令牌——请求头 “Authorization: Bearer <key>”',
      undescribed: '此描述中未定义',
      noProperties: '无字段。',
      backHome: '← 搜索',
      raw: 'OpenAPI JSON',
      where: { query: '查询', path: '路径', header: '请求头', cookie: 'Cookie' },
    },
  };
  const STRINGS = LABELS[LANG];

  function t(key, vars) {
    let text = STRINGS[key] !== undefined ? STRINGS[key] : LABELS.en[key];
    if (typeof text !== 'string') return key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (vars[name] !== undefined ? String(vars[name]) : m));
    return text;
  }

  const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
  const REF = '#/components/schemas/';

  // --- small DOM helpers (text only): api/static/dom.js ------------------------------------------
  const { $, el, langOf } = window.SemsearchDom;

  /** Anchors: ids made of the schema's names, so they are stable and can be linked to. */
  const opId = (method, path) => `op-${method}-${path.replace(/[^A-Za-z0-9_]+/g, '-').replace(/^-+|-+$/g, '')}`;
  const schemaId = (name) => `schema-${name.replace(/[^A-Za-z0-9_.-]+/g, '-')}`;

  /** Inline Markdown-ish text: `code` spans become <code>, blank lines separate paragraphs. */
  function prose(text, cls) {
    const out = [];
    for (const para of String(text || '').split(/\n\s*\n/)) {
      if (!para.trim()) continue;
      const p = el('p', { class: cls || 'prose', lang: langOf(para) });
      String(para).split('`').forEach((part, i) => {
        if (!part) return;
        p.append(i % 2 ? el('code', { text: part }) : part.replace(/\s*\n\s*/g, ' '));
      });
      out.push(p);
    }
    return out;
  }

  function inlineProse(text) {
    const span = el('span', { lang: langOf(text) });
    String(text || '').split('`').forEach((part, i) => {
      if (part) span.append(i % 2 ? el('code', { text: part }) : part);
    });
    return span;
  }

  // --- schemas ------------------------------------------------------------------------------------------
  let SCHEMAS = {};

  const refName = (ref) => (typeof ref === 'string' && ref.startsWith(REF) ? ref.slice(REF.length) : null);

  /** The schema a $ref points to (one level), or the schema itself. */
  function resolve(schema) {
    const name = schema && refName(schema.$ref);
    return name ? SCHEMAS[name] || null : schema;
  }

  /** A link to a component schema in the Schemas section (marked when the schema does not define it). */
  function schemaLink(ref) {
    const name = refName(ref) || String(ref);
    if (!SCHEMAS[name]) {
      return el('span', { class: 'schema-ref missing', title: t('undescribed') }, el('code', { text: name }));
    }
    return el('a', { class: 'schema-ref', href: `#${schemaId(name)}` }, el('code', { text: name }));
  }

  /** The type of a schema as nodes: names of referenced schemas are links. */
  function typeNodes(schema) {
    if (!schema || typeof schema !== 'object') return ['any'];
    if (schema.$ref) return [schemaLink(schema.$ref)];
    const alts = schema.anyOf || schema.oneOf;
    if (Array.isArray(alts)) {
      const out = [];
      alts.forEach((alt, i) => {
        if (i) out.push(' | ');
        out.push(...typeNodes(alt));
      });
      return out;
    }
    if (Array.isArray(schema.allOf) && schema.allOf.length === 1) return typeNodes(schema.allOf[0]);
    if (Array.isArray(schema.type)) return [schema.type.join(' | ')];
    if (schema.type === 'array') {
      if (Array.isArray(schema.prefixItems)) {
        const out = ['['];
        schema.prefixItems.forEach((item, i) => {
          if (i) out.push(', ');
          out.push(...typeNodes(item));
        });
        out.push(']');
        return out;
      }
      const items = schema.items ? typeNodes(schema.items) : ['any'];
      return schema.items && (schema.items.anyOf || schema.items.oneOf) ? ['(', ...items, ')[]'] : [...items, '[]'];
    }
    if (schema.const !== undefined) return [JSON.stringify(schema.const)];
    let name = schema.type || (schema.properties ? 'object' : 'any');
    if (schema.format) name += ` (${schema.format})`;
    return [name];
  }

  /** Defaults, ranges and allowed values of a schema, as one short line. */
  function constraints(schema) {
    const parts = [];
    const s = schema || {};
    if (Array.isArray(s.enum)) parts.push(t('oneOf', { value: s.enum.map((v) => JSON.stringify(v)).join(', ') }));
    const min = s.minimum !== undefined ? s.minimum : s.minLength !== undefined ? s.minLength : s.minItems;
    const max = s.maximum !== undefined ? s.maximum : s.maxLength !== undefined ? s.maxLength : s.maxItems;
    // Python's sys.maxsize as a bound says nothing to a reader
    const big = (n) => typeof n === 'number' && n >= 2 ** 53;
    const top = max !== undefined && !big(max) ? max : undefined;
    if (min !== undefined && top !== undefined) parts.push(t('range', { value: `${min}–${top}` }));
    else if (min !== undefined) parts.push(t('range', { value: `≥ ${min}` }));
    else if (top !== undefined) parts.push(t('range', { value: `≤ ${top}` }));
    if (s.default !== undefined && s.default !== null) parts.push(t('default', { value: JSON.stringify(s.default) }));
    return parts.join(' · ');
  }

  function exampleOf(schema, media) {
    if (media && media.example !== undefined) return media.example;
    if (media && media.examples && typeof media.examples === 'object') {
      const first = Object.values(media.examples)[0];
      if (first && first.value !== undefined) return first.value;
    }
    if (!schema) return undefined;
    if (schema.example !== undefined) return schema.example;
    if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
    return undefined;
  }

  function exampleBlock(value) {
    return el('div', { class: 'example' },
      el('div', { class: 'label', text: t('example') }),
      el('pre', {}, el('code', { lang: langOf(JSON.stringify(value)), text: JSON.stringify(value, null, 2) })));
  }

  /** A table of an object schema's properties: name, type, required, description. */
  function propertiesTable(schema) {
    const props = (schema && schema.properties) || {};
    const names = Object.keys(props);
    if (!names.length) return el('p', { class: 'muted', text: t('noProperties') });
    const required = new Set(schema.required || []);
    return el('table', { class: 'api-table props' },
      el('thead', {}, el('tr', {},
        el('th', { text: t('name') }), el('th', { text: t('type') }), el('th', { text: t('description') }))),
      el('tbody', {}, names.map((name) => {
        const prop = props[name] || {};
        const note = constraints(prop);
        return el('tr', {},
          el('td', {}, el('code', { class: 'prop-name', text: name }),
            el('span', { class: required.has(name) ? 'req' : 'opt', text: required.has(name) ? t('required') : t('optional') })),
          el('td', { class: 'type' }, typeNodes(prop)),
          el('td', {}, prop.description ? inlineProse(prop.description) : null,
            note ? el('div', { class: 'note', text: note }) : null));
      })));
  }

  // --- one operation --------------------------------------------------------------------------------------
  function parametersBlock(params) {
    const block = el('div', { class: 'block' }, el('h4', { text: t('parameters') }));
    if (!params.length) {
      block.append(el('p', { class: 'muted', text: t('noParameters') }));
      return block;
    }
    block.append(el('table', { class: 'api-table params' },
      el('thead', {}, el('tr', {},
        el('th', { text: t('name') }), el('th', { text: t('in') }), el('th', { text: t('type') }),
        el('th', { text: t('description') }))),
      el('tbody', {}, params.map((p) => {
        const schema = p.schema || {};
        const description = p.description || schema.description;
        const example = exampleOf(schema, p);
        const note = [constraints(schema), example !== undefined ? `${t('example')}: ${JSON.stringify(example)}` : '']
          .filter(Boolean).join(' · ');
        return el('tr', { 'data-param': p.name },
          el('td', {}, el('code', { class: 'param-name', text: p.name }),
            el('span', { class: p.required ? 'req' : 'opt', text: p.required ? t('required') : t('optional') })),
          el('td', { class: 'param-in', text: (STRINGS.where && STRINGS.where[p.in]) || p.in }),
          el('td', { class: 'type' }, typeNodes(schema)),
          el('td', {}, description ? inlineProse(description) : null,
            note ? el('div', { class: 'note', lang: langOf(note), text: note }) : null));
      }))));
    return block;
  }

  function bodyBlock(body) {
    const block = el('div', { class: 'block' }, el('h4', { text: t('requestBody') }));
    if (body.description) block.append(...prose(body.description));
    block.append(el('p', { class: 'muted', text: body.required ? t('bodyRequired') : t('bodyOptional') }));
    for (const [type, media] of Object.entries(body.content || {})) {
      const schema = (media && media.schema) || {};
      const part = el('div', { class: 'media' }, el('div', { class: 'media-type' }, el('code', { text: type })));
      const target = resolve(schema);
      if (schema.$ref) {
        part.append(el('p', { class: 'schema-line' }, schemaLink(schema.$ref)));
        if (target && target.description) part.append(...prose(target.description));
      }
      if (target && (target.properties || target.type === 'object')) part.append(propertiesTable(target));
      else if (target && !schema.$ref) part.append(el('p', { class: 'type' }, typeNodes(target)));
      const example = exampleOf(target, media);
      if (example !== undefined) part.append(exampleBlock(example));
      block.append(part);
    }
    return block;
  }

  function responsesBlock(responses) {
    const codes = Object.keys(responses || {}).sort();
    return el('div', { class: 'block' }, el('h4', { text: t('responses') }),
      el('table', { class: 'api-table responses' },
        el('thead', {}, el('tr', {},
          el('th', { text: t('status') }), el('th', { text: t('description') }), el('th', { text: t('schema') }))),
        el('tbody', {}, codes.map((code) => {
          const answer = responses[code] || {};
          const media = Object.entries(answer.content || {}).filter(([, m]) => m && m.schema);
          const kind = code[0] === '2' ? 'ok' : code[0] === '4' || code[0] === '5' ? 'bad' : 'other';
          return el('tr', { 'data-status': code },
            el('td', {}, el('span', { class: `status-code ${kind}`, text: code })),
            el('td', {}, answer.description ? inlineProse(answer.description) : null),
            el('td', { class: 'type' }, media.map(([type, m]) => el('div', {}, typeNodes(m.schema),
              media.length > 1 ? el('span', { class: 'media-note', text: ` (${type})` }) : null))));
        }))));
  }

  function authBlock(requirements, schemes) {
    const block = el('div', { class: 'block auth' }, el('h4', { text: t('auth') }));
    const names = [];
    for (const requirement of requirements || []) names.push(...Object.keys(requirement || {}));
    if (!names.length) {
      block.append(el('p', { class: 'muted', text: t('authNone') }));
      return block;
    }
    block.append(el('ul', { class: 'auth-list' }, names.map((name) => el('li', {},
      el('span', { class: 'key-badge', text: t('keyRequired') }), ' ', schemeLine(name, schemes[name])))));
    return block;
  }

  function schemeLine(name, scheme) {
    const s = scheme || {};
    const kind = s.type === 'http' && String(s.scheme).toLowerCase() === 'bearer' ? t('bearer')
      : [s.type, s.scheme, s.in, s.name].filter(Boolean).join(' ');
    const line = el('span', {}, el('code', { text: name }), ` — ${kind}`);
    if (s.description) line.append(' (', inlineProse(s.description), ')');
    return line;
  }

  function operation(spec, path, method, op) {
    const section = el('section', { class: 'op', id: opId(method, path) });
    section.append(el('h3', { class: 'op-head' },
      el('span', { class: `method ${method}`, text: method.toUpperCase() }),
      el('code', { class: 'op-path', text: path }),
      op.summary ? el('span', { class: 'op-summary', lang: langOf(op.summary), text: op.summary }) : null));
    if (op.deprecated) section.append(el('p', { class: 'muted', text: 'deprecated' }));
    if (op.description) section.append(...prose(op.description));
    const requirements = op.security !== undefined ? op.security : spec.security;
    section.append(authBlock(requirements, (spec.components && spec.components.securitySchemes) || {}));
    section.append(parametersBlock(op.parameters || []));
    if (op.requestBody) section.append(bodyBlock(op.requestBody));
    section.append(responsesBlock(op.responses));
    return section;
  }

  // --- the page -------------------------------------------------------------------------------------------------
  function render(spec) {
    SCHEMAS = (spec.components && spec.components.schemas) || {};
    const info = spec.info || {};
    document.title = `${info.title || 'API'} — ${t('pageTitle')}`;
    $('api-title').textContent = t('pageTitle');
    $('api-version').textContent = [info.version ? `v${info.version}` : '', spec.openapi ? `OpenAPI ${spec.openapi}` : '']
      .filter(Boolean).join(' · ');

    const intro = $('intro');
    intro.replaceChildren(el('h1', { class: 'api-name', text: info.title || 'API' }), ...prose(info.description));
    const schemes = (spec.components && spec.components.securitySchemes) || {};
    if (Object.keys(schemes).length) {
      intro.append(el('h2', { class: 'section-label', text: t('authSchemes') }),
        el('ul', { class: 'auth-list' }, Object.entries(schemes).map(([name, s]) => el('li', {}, schemeLine(name, s)))));
    }

    // operations grouped by their first tag, in the schema's order
    const groups = new Map();
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const method of METHODS) {
        const op = item && item[method];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || '';
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push({ path, method, op: { ...op, parameters: [...(item.parameters || []), ...(op.parameters || [])] } });
      }
    }

    const toc = $('toc');
    const endpoints = $('endpoints');
    toc.replaceChildren(el('a', { class: 'toc-home', href: '/', text: t('backHome') }),
      el('h2', { class: 'section-label', text: t('endpoints') }));
    endpoints.replaceChildren();
    for (const [tag, ops] of groups) {
      const list = el('ul', { class: 'toc-list' });
      if (tag) toc.append(el('div', { class: 'toc-tag', text: tag }));
      toc.append(list);
      const group = el('section', { class: 'op-group' });
      if (tag) group.append(el('h2', { class: 'group-title', text: tag }));
      for (const { path, method, op } of ops) {
        list.append(el('li', {}, el('a', { class: 'toc-op', href: `#${opId(method, path)}`, title: op.summary || null },
          el('span', { class: `method ${method}`, text: method.toUpperCase() }),
          el('code', { class: 'toc-path', text: path }))));
        group.append(operation(spec, path, method, op));
      }
      endpoints.append(group);
    }

    const names = Object.keys(SCHEMAS).sort();
    const schemas = $('schemas');
    schemas.replaceChildren(el('h2', { class: 'group-title', text: t('schemas') }));
    if (names.length) {
      toc.append(el('h2', { class: 'section-label' }, el('a', { href: '#schemas', text: t('schemas') })));
      toc.append(el('ul', { class: 'toc-list schemas' }, names.map((name) => el('li', {},
        el('a', { href: `#${schemaId(name)}` }, el('code', { text: name }))))));
    }
    for (const name of names) {
      const schema = SCHEMAS[name] || {};
      const box = el('section', { class: 'schema', id: schemaId(name) },
        el('h3', { class: 'schema-name' }, el('code', { text: name })));
      if (schema.description) box.append(...prose(schema.description));
      if (schema.properties || schema.type === 'object') box.append(propertiesTable(schema));
      else box.append(el('p', { class: 'type' }, typeNodes(schema), constraints(schema) ? ` · ${constraints(schema)}` : ''));
      const example = exampleOf(schema);
      if (example !== undefined) box.append(exampleBlock(example));
      schemas.append(box);
    }
    schemas.hidden = !names.length;
    document.body.classList.add('ready');

    // the page was opened at an anchor: it exists only now
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  }

  function showError(title, detail) {
    $('status').replaceChildren(el('div', { class: 'error' }, el('strong', { text: title }), el('p', { text: detail })));
  }

  async function load() {
    document.documentElement.lang = LANG === 'zh' ? 'zh-CN' : 'en';
    $('api-title').textContent = t('pageTitle');
    $('api-raw').textContent = t('raw');
    $('toc').setAttribute('aria-label', t('endpoints'));
    $('status').textContent = t('loading');
    let spec;
    try {
      const response = await fetch('/openapi.json', { headers: { accept: 'application/json' } });
      if (!response.ok) {
        let message = `HTTP ${response.status}`;
        try {
          const body = await response.json();
          if (body && body.error && body.error.message) message = body.error.message;
        } catch (_) { /* not JSON */ }
        showError(t('loadError'), message);
        return;
      }
      spec = await response.json();
    } catch (_) {
      showError(t('loadError'), t('networkError'));
      return;
    }
    $('status').textContent = '';
    render(spec);
  }

  load();
})();
