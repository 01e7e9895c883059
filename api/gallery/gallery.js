// The gallery's entry: routes on the URL's hash, so moving between views never reloads the page.
//   #/?q=&category=&status=&offset=   the gallery
//   #/v/{id}                          one variation, followed live
//   #/new                             the create form

import { bindCreate, showCreate } from "./create.js";
import { bindSearch, showGallery } from "./list.js";
import { VariationPage } from "./variation.js";

const views = {
  gallery: document.getElementById("gallery-view"),
  variation: document.getElementById("variation-view"),
  create: document.getElementById("create-view"),
};
let page = null; // the variation followed, closed when leaving it
let handed = null; // the stream the create form opened for the variation it created

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  const variation = path.match(/^\/v\/([^/]+)$/);
  if (variation) return { view: "variation", id: decodeURIComponent(variation[1]) };
  if (path === "/new") return { view: "create" };
  return { view: "gallery", params: new URLSearchParams(search) };
}

async function show() {
  const wanted = route();
  page?.close();
  page = null;
  views.variation.replaceChildren(); // its images and streams go with it
  for (const [name, element] of Object.entries(views)) element.hidden = name !== wanted.view;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === (wanted.view === "create" ? "new" : "gallery")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.getElementById("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
  if (wanted.view === "variation") {
    const follower = handed?.id === wanted.id ? handed : null;
    if (handed !== follower) handed?.close();
    handed = null;
    page = new VariationPage(views.variation, wanted.id);
    await page.open(follower);
  } else if (wanted.view === "create") {
    document.title = "Create · imagegen";
    await showCreate();
  } else {
    document.title = "Gallery · imagegen";
    await showGallery(wanted.params);
  }
}

bindSearch();
bindCreate((accepted, follower) => {
  handed = follower;
  location.hash = `#/v/${accepted.id}`;
});
window.addEventListener("hashchange", show);
show();
