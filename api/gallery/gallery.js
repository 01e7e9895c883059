// The gallery's entry: routes on the URL's hash, so moving between views never reloads the page.
//   #/?q=&category=&status=&offset=   the gallery
//   #/v/{id}                          one variation, followed live
//   #/new                             the create form
//   #/s/{name}                        a variant set (an A/B test) and its winner
// With API keys configured, a browser not signed in sees the sign-in form instead.

import { loadSession, session, signIn, signOut } from "./api.js";
import { bindCreate, showCreate } from "./create.js";
import { bindSearch, showGallery } from "./list.js";
import { SetPage } from "./set.js";
import { VariationPage } from "./variation.js";

const views = {
  gallery: document.getElementById("gallery-view"),
  variation: document.getElementById("variation-view"),
  set: document.getElementById("set-view"),
  create: document.getElementById("create-view"),
  signin: document.getElementById("signin-view"),
};
let page = null; // the variation followed, closed when leaving it
let handed = null; // the stream the create form opened for the variation it created

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  if (session.required && !session.signedIn) return { view: "signin" };
  const variation = path.match(/^\/v\/([^/]+)$/);
  if (variation) return { view: "variation", id: decodeURIComponent(variation[1]) };
  const set = path.match(/^\/s\/([^/]+)$/);
  if (set) return { view: "set", name: decodeURIComponent(set[1]) };
  if (path === "/new") return { view: "create" };
  return { view: "gallery", params: new URLSearchParams(search) };
}

async function show() {
  const wanted = route();
  page?.close();
  page = null;
  views.variation.replaceChildren(); // its images and streams go with it
  views.set.replaceChildren();
  showWho();
  for (const [name, element] of Object.entries(views)) element.hidden = name !== wanted.view;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === (wanted.view === "create" ? "new" : "gallery")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.getElementById("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
  if (wanted.view === "signin") {
    document.title = "Sign in · imagegen";
    document.getElementById("k-key").focus();
  } else if (wanted.view === "set") {
    page = new SetPage(views.set, wanted.name);
    await page.open();
  } else if (wanted.view === "variation") {
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

function showWho() {
  const who = document.getElementById("who");
  who.hidden = !session.signedIn;
  document.getElementById("who-name").textContent = session.signedIn ? `${session.name} (${session.scope})` : "";
  document.body.dataset.scope = session.scope || "";
}

function bindSignIn() {
  const form = document.getElementById("signin");
  const error = document.getElementById("k-key-error");
  const key = document.getElementById("k-key");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    key.removeAttribute("aria-invalid");
    try {
      await signIn(key.value.trim());
      key.value = "";
      show();
    } catch (problem) {
      error.textContent = problem.status === 401 ? "Not a key this imagegen knows." : `Not signed in: ${problem.message}`;
      key.setAttribute("aria-invalid", "true");
      key.focus();
    }
  });
  document.getElementById("sign-out").addEventListener("click", async () => {
    await signOut().catch(() => null);
    show();
  });
  // a call refused for want of a valid session (it expired, or was ended elsewhere): sign in again
  window.addEventListener("signed-out", async () => {
    if (!session.signedIn) return;
    await loadSession().catch(() => null);
    if (!session.signedIn) show();
  });
}

bindSearch();
bindSignIn();
bindCreate((accepted, follower) => {
  handed = follower;
  location.hash = accepted.set ? `#/s/${encodeURIComponent(accepted.set)}` : `#/v/${accepted.id}`;
});
window.addEventListener("hashchange", show);
loadSession().catch(() => null).finally(show);
