/* DOM helpers shared by the search page (app.js) and the API reference (apidocs.js).

   Rule: text from documents or the API is inserted as text (textContent, Node.append of strings), never
   as HTML; these helpers offer no other way. */
'use strict';

window.SemsearchDom = (() => {
  const HAN = /\p{Script=Han}/u;

  const $ = (id) => document.getElementById(id);

  /** An element; `text` sets textContent, `class` the class name, `on*` adds listeners, other keys are
      attributes (true: present and empty; null, undefined or false: absent). Children are nodes or
      strings, arrays of them are flattened. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  /** Mark text in Chinese as such, so the browser picks Chinese glyph forms and line breaking. */
  const langOf = (text) => (HAN.test(text || '') ? 'zh-CN' : null);

  return { $, el, langOf, HAN };
})();
