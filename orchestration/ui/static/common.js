// What both pages share: calls with the tab's API key (never stored in the page), errors
// shown on the page, and safe element building (no HTML from data is ever parsed).
"use strict";

const recs = (() => {
  const KEY = "recs.apiKey";

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function showError(message) {
    const box = document.getElementById("error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function call(path, options = {}) {
    const headers = { ...(options.headers || {}) };
    const key = sessionStorage.getItem(KEY);
    if (key) headers["X-Api-Key"] = key;
    const response = await fetch(path, { ...options, headers });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const why = (body && body.error) || response.statusText;
      throw new Error(`${options.method || "GET"} ${path.split("?")[0]}: ${response.status} ${why}`);
    }
    return body;
  }

  async function setUp(onKey) {
    const config = await call("/ui/config");
    const box = document.getElementById("key-box");
    const input = document.getElementById("api-key");
    if (config.keyRequired) {
      box.hidden = false;
      input.value = sessionStorage.getItem(KEY) || "";
      input.addEventListener("change", () => {
        sessionStorage.setItem(KEY, input.value.trim());
        onKey();
      });
      if (!input.value) {
        showError("This API needs a key: type it at the top (it stays in this tab only).");
        return false;
      }
    }
    return true;
  }

  const number = (value, digits = 0) =>
    value === null || value === undefined ? "–" : Number(value).toLocaleString("en", {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    });

  return { el, svg, call, setUp, showError, number };
})();
