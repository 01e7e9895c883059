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

async function call(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
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
  if (!response.ok) throw new Problem(response.status, parsed);
  return parsed;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

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
