// Building the page from data without ever parsing data as HTML: every value goes in as a text node
// or an attribute, so a prompt like `<img onerror=…>` shows as the text it is.

/** h("a", {href: "#/", class: "x"}, "text", child) — attributes by setAttribute, children as text nodes. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "style" && typeof value === "object") Object.assign(element.style, value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export const percent = (fraction) => `${(fraction * 100).toFixed(3)}%`;

export function kilobytes(bytes) {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Copy `text`; say so in `status` (an aria-live element). */
export async function copy(text, status) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // no clipboard API (an insecure context, or permission refused): the old way, through a textarea
    const area = h("textarea", { class: "sr-only", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  if (status) {
    status.textContent = "Copied";
    setTimeout(() => { status.textContent = ""; }, 2000);
  }
}

/** A read-only field with its value and a copy button; `label` names both. */
export function copyable(label, value, key) {
  const id = `copy-${key}`;
  const status = h("span", { class: "copied", role: "status" });
  const input = h("input", { id, type: "text", readonly: true, value, spellcheck: "false" });
  input.value = value;
  return h("div", { class: "copyable" },
    h("label", { for: id }, label),
    h("div", { class: "copy-row" }, input,
      h("button", { type: "button", "data-key": `copy-button-${key}`, onclick: () => copy(value, status) }, "Copy"),
      status));
}
