// The gallery: variations newest first, searched by name or category, a page at a time, each with its
// status and a thumbnail per family drawn (its smallest derivative, loaded lazily).

import { get, imageUrl } from "./api.js";
import { clear, h, when } from "./dom.js";

export const PAGE = 12;

const limitOf = (params) => Math.min(200, Math.max(1, Number.parseInt(params.get("limit"), 10) || PAGE));

/** The gallery's query from the route's parameters: q, category, status, offset, limit. */
function query(params) {
  const wanted = new URLSearchParams({ limit: String(limitOf(params)), offset: params.get("offset") || "0" });
  for (const name of ["q", "category", "status"]) if (params.get(name)) wanted.set(name, params.get(name));
  return wanted;
}

function thumbnail(variation, family) {
  const smallest = [...family.derivatives].sort((a, b) => a.width * a.height - b.width * b.height)[0];
  const shown = smallest || { name: family.name, width: family.width, height: family.height };
  return h("li", { class: "thumb" },
    h("img", {
      src: imageUrl(variation.name, shown.name, `${family.round}-${family.completedAt || ""}`),
      alt: `${variation.generation.prompt} (${family.name})`, width: shown.width, height: shown.height,
      loading: "lazy", style: { aspectRatio: `${shown.width} / ${shown.height}` },
    }),
    h("span", {}, family.name));
}

function card(item, detail) {
  const families = detail?.families || [];
  const drawn = families.filter((f) => f.status === "completed");
  return h("li", { class: "card", "data-testid": "variation-card", "data-name": item.name },
    h("h2", {}, h("a", { href: `#/v/${item.id}` }, item.name)),
    h("p", { class: "meta" },
      h("span", { class: `status status-${item.status}`, "data-testid": "card-status" }, item.status),
      item.category ? h("span", { class: "category" }, item.category) : null,
      h("time", { datetime: item.createdAt }, when(item.createdAt))),
    h("p", { class: "prompt" }, item.generation.prompt),
    drawn.length
      ? h("ul", { class: "thumbs", "aria-label": `${item.name}: families drawn` }, drawn.map((f) => thumbnail(item, f)))
      : h("p", { class: "hint" }, families.length ? `${families.length} families, none drawn yet` : "no images yet"));
}

/** Show the page of the gallery the route's `params` ask for. */
export async function showGallery(params) {
  const form = document.getElementById("search");
  for (const name of ["q", "category", "status"]) form.elements[name].value = params.get(name) || "";
  const list = document.getElementById("gallery-list");
  const count = document.getElementById("gallery-count");
  const wanted = query(params);
  count.textContent = "Loading…";
  let page;
  try {
    page = await get(`/variations?${wanted}`);
  } catch (error) {
    count.textContent = `The gallery could not be loaded: ${error.message}`;
    return;
  }
  // the list has no families: each card's come from its variation (at most a page of small reads)
  const details = await Promise.all(page.items.map((item) => get(`/variations/${item.id}`).catch(() => null)));
  clear(list).append(...page.items.map((item, i) => card(item, details[i])));
  const first = page.total ? page.offset + 1 : 0, last = page.offset + page.items.length;
  count.textContent = page.total ? `Showing ${first}–${last} of ${page.total}` : "No variations match.";
  count.dataset.total = String(page.total);
  const size = page.limit, pages = Math.max(1, Math.ceil(page.total / size));
  document.getElementById("page-of").textContent = `page ${Math.floor(page.offset / size) + 1} of ${pages}`;
  const prev = document.getElementById("prev"), next = document.getElementById("next");
  prev.disabled = page.offset === 0;
  next.disabled = last >= page.total;
  const go = (offset) => {
    const to = new URLSearchParams(params);
    to.set("offset", String(Math.max(0, offset)));
    location.hash = `#/?${to}`;
  };
  prev.onclick = () => go(page.offset - size);
  next.onclick = () => go(page.offset + size);
}

export function bindSearch() {
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const to = new URLSearchParams();
    for (const [name, value] of new FormData(event.target)) if (String(value).trim()) to.set(name, String(value).trim());
    location.hash = `#/?${to}`;
  });
}
