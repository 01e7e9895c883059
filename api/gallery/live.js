// A variation's server-sent events (GET /variations/{id}/live), held until a view takes them: the create
// form starts following a variation before it posts it (its id is uuid5 of its name), so no event of
// its drawing is missed, and hands the stream to the variation's view once the API has accepted it.

import { liveUrl } from "./api.js";

export const TYPES = ["snapshot", "VariationRequested", "VariationRejected", "RegenerationRequested",
  "FamilyRetryRequested", "FamilyStarted", "FamilyProgress", "FamilyPreview", "FamilyCompleted", "FamilyFailed", "FamilyCancelled",
  "FamilyAbandoned", "VariationCompleted", "VariationPartial", "VariationFailed", "VariationCancelled"];

// streams/messages.py NAMESPACE: ids are uuid5 of the name in it (the browser tests check the two agree)
const NAMESPACE = "6f1e8a4c-3c1b-5d0e-9a57-2b1f0d9c7e42";

/** The id the API gives a variation of this name, or null where the page cannot hash (an insecure context). */
export async function variationId(name) {
  if (!globalThis.crypto?.subtle) return null;
  const namespace = NAMESPACE.replace(/-/g, "").match(/../g).map((pair) => parseInt(pair, 16));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-1",
    new Uint8Array([...namespace, ...new TextEncoder().encode(name)])));
  hash[6] = (hash[6] & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = [...hash.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class Follower {
  constructor(id) {
    this.id = id;
    this.held = [];
    this.handler = null;
    this.onstate = () => {};
    this.source = new EventSource(liveUrl(id));
    for (const type of TYPES) this.source.addEventListener(type, (event) => this.hand(type, JSON.parse(event.data)));
    this.opened = new Promise((resolve) => {
      this.source.addEventListener("open", resolve, { once: true });
      setTimeout(resolve, 5000); // a slow stream must not hold the form back for long
    });
    this.source.addEventListener("open", () => this.onstate());
    this.source.addEventListener("error", () => this.onstate());
  }

  /** "connecting", "open" or "closed" (EventSource reconnects by itself after an error). */
  get state() {
    return ["connecting", "open", "closed"][this.source.readyState];
  }

  hand(type, data) {
    if (this.handler) this.handler(type, data);
    else this.held.push([type, data]);
  }

  /** Send every event to `handler`, those held so far first. */
  attach(handler, onstate) {
    this.handler = handler;
    this.onstate = onstate;
    for (const [type, data] of this.held.splice(0)) handler(type, data);
    onstate();
  }

  close() {
    this.source.close();
  }
}
