// The API under /api/images, as the page calls it. Every answer is JSON: a body, or a problem
// {"status", "message", "errors": [{"field", "message"}]}.

export const BASE = "/api/images";

export class Problem extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.errors = body?.errors || [];
  }
}

// Who this browser is signed in as (GET /session): with API keys configured, the page's calls carry the
// session cookie, and those that change anything its CSRF token too.
export const session = { required: false, signedIn: false, name: null, scope: "admin", csrfToken: null };

/** Whether the session may create, regenerate, cancel and choose (a read key's may only look). */
export const canSubmit = () => ["submit", "admin"].includes(session.scope);

async function call(method, path, body) {
  const init = { method, headers: { accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET" && session.csrfToken) init.headers["x-csrf-token"] = session.csrfToken;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path, init);
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: text };
  }
  if (response.status === 401 && session.required) window.dispatchEvent(new CustomEvent("signed-out"));
  if (!response.ok) throw new Problem(response.status, parsed);
  return parsed;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

function keep(state) {
  Object.assign(session, state);
  if (!state.signedIn) session.csrfToken = null;
  return session;
}

/** Read who this browser is signed in as. */
export const loadSession = async () => keep(await get("/session"));
/** Exchange an API key for a session cookie (the key itself is not kept by the page). */
export const signIn = async (key) => keep(await post("/session", { key }));
export async function signOut() {
  await call("DELETE", "/session");
  return keep({ signedIn: false, name: null, scope: null });
}

/** The URL of a family master or a derivative; `version` changes with each drawing, past the browser's cache. */
export function imageUrl(variation, name, version) {
  const url = `${BASE}/${encodeURIComponent(variation)}/${encodeURIComponent(name)}`;
  return version ? `${url}?v=${encodeURIComponent(version)}` : url;
}

export const liveUrl = (id) => `${BASE}/variations/${encodeURIComponent(id)}/live`;

let table = null;
/** The family table in force (GET /families), fetched once. */
export async function families() {
  table ??= get("/families").then((body) => body.families).catch((error) => { table = null; throw error; });
  return table;
}

/** The table's derivative of that name, with its safe zones (undefined if the table has none). */
export function derivativeSpec(tableFamilies, name) {
  for (const family of tableFamilies) {
    const found = family.derivatives.find((d) => d.name === name);
    if (found) return found;
  }
  return undefined;
}
