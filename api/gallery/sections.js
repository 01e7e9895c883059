// The variation page's sections, made from its view (the variation as GET /variations/{id} shows it):
// the generation parameters, each drawn family's master and mocks, and the <meta> tags a page needs.

import { derivativeSpec, imageUrl } from "./api.js";
import { copy, copyable, h, kilobytes, percent, when } from "./dom.js";
import { mock } from "./mocks.js";

// the derivative each tag prefers, best first (as examples/seo_consumer.py chooses them)
const OG_IMAGE = ["og-image", "facebook-link", "linkedin-share", "banner", "og-square"];
const TWITTER_LARGE = ["x-large-card", "og-image", "facebook-link", "banner"];
const TWITTER_SQUARE = ["twitter-card", "og-square", "profile"];

const escapeAttribute = (value) => String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;")
  .replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#x27;");

/** The <meta> tags of a page showing this variation's images (the prompt as their alt text). */
export function metaTags(view) {
  const images = new Map();
  for (const family of view.families) if (family.status === "completed") for (const d of family.derivatives) images.set(d.name, d);
  const first = (names) => names.map((n) => images.get(n)).find(Boolean);
  const alt = view.generation.prompt;
  const tags = [];
  const og = first(OG_IMAGE);
  if (og) {
    tags.push(["property", "og:image", og.url], ["property", "og:image:width", og.width],
      ["property", "og:image:height", og.height], ["property", "og:image:type", og.contentType],
      ["property", "og:image:alt", alt]);
  }
  const large = first(TWITTER_LARGE), square = first(TWITTER_SQUARE);
  if (large) tags.push(["name", "twitter:card", "summary_large_image"], ["name", "twitter:image", large.url]);
  else if (square) tags.push(["name", "twitter:card", "summary"], ["name", "twitter:image", square.url]);
  if (large || square) tags.push(["name", "twitter:image:alt", alt]);
  return tags.map(([attr, name, value]) => `<meta ${attr}="${name}" content="${escapeAttribute(value)}">`);
}

/** The generation parameters, and how the variation stands. */
export function parameters(view) {
  const g = view.generation;
  const rows = [["Prompt", g.prompt], ["Negative prompt", g.negativePrompt || "—"], ["Seed", g.seed], ["Model", g.model],
    ["Steps", g.inferenceSteps], ["Guidance", g.guidanceScale], ["DX job", view.isDxJob ? "yes" : "no"],
    ["Category", view.category || "—"], ["Round", view.round], ["Created", when(view.createdAt)],
    ["Completed", when(view.completedAt) || "—"]];
  return h("section", { class: "parameters", "aria-labelledby": "parameters-title" },
    h("h2", { id: "parameters-title" }, "Generation"),
    h("dl", { "data-testid": "parameters" }, rows.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, String(value))))),
    view.error ? h("p", { class: "error" }, view.error) : null);
}

/**
 * A drawn family: its master with every derivative's crop box (and the subject the crops keep) drawn on
 * it, then every derivative in a mock of where it appears. `crops` remembers, per family, the derivative
 * whose crop box alone is shown ("" for all); `table` is the family table, for the safe zones.
 */
export function drawn(view, family, version, { table, crops, root }) {
  const alt = view.generation.prompt;
  const chosen = crops[family.name] || "";
  const boxes = family.derivatives.filter((d) => d.cropBox).map((d, i) => h("div", {
    class: "crop-box", "data-testid": "crop-box", "data-derivative": d.name, hidden: Boolean(chosen) && chosen !== d.name,
    style: { left: percent(d.cropBox.left / family.width), top: percent(d.cropBox.top / family.height),
      width: percent(d.cropBox.width / family.width), height: percent(d.cropBox.height / family.height) },
  }, h("span", { style: { top: `${i * 1.2}rem` } }, d.name))); // boxes often share a corner: their labels stack
  const subject = family.subject ? h("div", { class: "subject-box", title: `subject (${family.subject.foundBy})`,
    style: { left: percent(family.subject.left / family.width), top: percent(family.subject.top / family.height),
      width: percent(family.subject.width / family.width),
      height: percent(family.subject.height / family.height) } }, h("span", {}, `subject: ${family.subject.foundBy}`)) : null;
  const selectId = `crop-of-${family.name}`;
  const select = h("select", { id: selectId, "data-key": selectId, onchange: (e) => {
    crops[family.name] = e.target.value;
    for (const box of root.querySelectorAll(`[data-family="${CSS.escape(family.name)}"] .crop-box`)) {
      box.hidden = Boolean(e.target.value) && box.dataset.derivative !== e.target.value;
    }
  } }, h("option", { value: "" }, "every derivative"),
  family.derivatives.map((d) => h("option", { value: d.name, selected: d.name === chosen }, d.name)));
  // at most 720 px wide and 520 px high, at its own ratio
  const master = h("figure", { class: "master", style: { width: `min(100%, 720px, ${(520 * family.width) / family.height}px)` } },
    h("div", { class: "frame", style: { aspectRatio: `${family.width} / ${family.height}` } },
      h("img", { src: imageUrl(view.name, family.name, version), alt: `${alt} (${family.name} master)`,
        width: family.width, height: family.height, loading: "lazy", "data-testid": "master",
        "data-family": family.name }),
      boxes, subject),
    h("figcaption", {}, `Master ${family.width}×${family.height}, ${kilobytes(family.bytes || 0)}. `,
      h("label", { for: selectId }, "Crop box of "), select));
  const mocks = family.derivatives.map((d) => {
    const figure = mock(d, {
      src: imageUrl(view.name, d.name, version), alt, zones: derivativeSpec(table, d.name)?.safeZones || [],
      host: location.host, title: view.name, description: view.generation.prompt,
    });
    figure.append(h("div", { class: "derivative-facts" },
      h("p", {}, `${kilobytes(d.bytes)} ${d.contentType}`, d.cropReason ? ` · crop kept the ${d.cropReason}` : "",
        d.subjectClearOfSafeZones === false ? " · ⚠ the subject touches a safe zone" : "",
        d.upscaled ? ` · upscaled ×${d.scale.toFixed(2)}` : ""),
      copyable(`URL of ${d.name}`, d.url, `${family.name}-${d.name}`)));
    return figure;
  });
  return h("div", { class: "drawn" }, master, h("div", { class: "mocks" }, mocks));
}

/** The <meta> tags, and the page's own address, ready to copy. */
export function meta(view) {
  const tags = metaTags(view);
  const text = tags.join("\n");
  const status = h("span", { class: "copied", role: "status" });
  return h("section", { class: "meta-tags", "aria-labelledby": "meta-title" },
    h("h2", { id: "meta-title" }, "Meta tags"),
    tags.length
      ? [h("pre", { "data-testid": "meta-tags", tabindex: "0", "aria-label": "meta tags" }, text),
        h("button", { type: "button", "data-key": "copy-meta", onclick: () => copy(text, status) }, "Copy meta tags"),
        status]
      : h("p", { class: "hint" }, "No social image drawn yet."),
    copyable("Page of this variation", location.href, "page"));
}
