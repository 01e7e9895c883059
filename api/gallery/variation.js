// One variation: its parameters, each family's master with the crop boxes drawn on it, every derivative
// in a mock of where it appears, the <meta> tags a page needs, and the actions (regenerate, retry a
// failed family, cancel) — all kept current by the variation's server-sent events, without reloading.
//
// The events come straight from the log and the read model follows them a moment later, so each event
// is shown at once (over the last view read) and the view is read again until it has caught up.

import { canSubmit, families, get, post } from "./api.js";
import { clear, h } from "./dom.js";
import { Follower } from "./live.js";
import { drawn, meta, parameters } from "./sections.js";

const TERMINAL = new Set(["completed", "partial", "failed", "cancelled", "rejected"]);
const VARIATION_ENDS = { VariationCompleted: "completed", VariationPartial: "partial", VariationFailed: "failed",
  VariationCancelled: "cancelled" };
const FAMILY_ENDS = { FamilyCompleted: "completed", FamilyFailed: "failed", FamilyCancelled: "cancelled",
  FamilyAbandoned: "abandoned" };
const CATCH_UP_TRIES = 60; // reads of the view, 250 ms apart, while it is behind the events
const GIVE_UP_S = 20; // a variation neither read nor heard of by then is said not to exist

export class VariationPage {
  constructor(root, id) {
    this.root = root;
    this.id = id;
    this.view = null; // the variation as last read
    this.live = this.nothingLive(); // what the events said since then
    this.progress = {}; // family -> {step, steps}
    this.previews = {}; // family -> {src, step, steps, round}: the picture forming, until its master comes
    this.updates = 0;
    this.stepsSeen = 0;
    this.table = [];
    this.crops = {}; // family -> the derivative whose crop box is drawn ("" for all)
    this.closed = false;
  }

  nothingLive() {
    return { status: null, round: 0, families: {}, reason: null };
  }

  /** Show the variation and follow it: with `follower` when the create form already does, else anew. */
  async open(follower) {
    this.skeleton();
    this.table = await families().catch(() => []);
    if (this.closed) return follower?.close();
    this.follower = follower || new Follower(this.id);
    this.follower.attach((type, data) => (type === "snapshot" ? this.snapshot(data) : this.event(type, data)),
      () => this.showLive());
    await this.refresh();
    // events lost while the stream reconnects are caught by reading the view now and then
    this.poll = setInterval(() => { if (!TERMINAL.has(this.status())) this.refresh(0, false); }, 3000);
    this.giveUp = setTimeout(() => this.notFound(), GIVE_UP_S * 1000);
  }

  /** Nothing was recorded under this id, nor heard of it: stop waiting, and say so. */
  notFound() {
    if (this.closed || this.view || this.live.status || this.updates) return;
    this.follower?.close();
    clearInterval(this.poll);
    clearTimeout(this.timer);
    this.gaveUp = true;
    this.render(true);
  }

  close() {
    this.closed = true;
    this.follower?.close();
    clearInterval(this.poll);
    clearTimeout(this.timer);
    clearTimeout(this.giveUp);
  }

  // --- what is known --------------------------------------------------------------------------------

  status() {
    return this.live.status || this.view?.status || "pending";
  }

  /** The view as read, with what the events said since laid over it. */
  shown() {
    if (!this.view) return null;
    const view = structuredClone(this.view);
    if (this.live.status) view.status = this.live.status;
    view.round = Math.max(view.round, this.live.round);
    for (const family of view.families) Object.assign(family, this.live.families[family.name] || {});
    return view;
  }

  /** Whether a view read is behind what the events have said. */
  behind(found) {
    if (this.live.round > found.round || (this.live.status && this.live.status !== found.status)) return true;
    return Object.entries(this.live.families).some(([name, said]) => {
      const family = found.families.find((f) => f.name === name);
      return !family || (said.status && said.status !== family.status);
    });
  }

  accept(found) {
    this.view = found;
    this.live = this.nothingLive();
    this.render();
  }

  snapshot(found) {
    this.count();
    if (!this.behind(found)) this.accept(found);
  }

  /**
   * Read the view; while it is behind the events, again in a moment (`tries` more times). The last try
   * takes it as it is when `force` (the read model may be ahead of a stream that lags).
   */
  async refresh(tries = CATCH_UP_TRIES, force = true) {
    let found = null;
    try {
      found = await get(`/variations/${encodeURIComponent(this.id)}`);
    } catch (error) {
      if (error.status !== 404) this.say(`The variation could not be read: ${error.message}`);
    }
    if (this.closed) return;
    const late = !found || this.behind(found);
    if (found && (!late || (tries <= 0 && force))) this.accept(found);
    else if (!this.view) this.render();
    if (late && tries > 0) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(tries - 1, force), 250);
    }
  }

  count() {
    this.updates += 1;
    this.showLive();
  }

  /** Where a family is: its round and status, as the events said or else as last read. */
  known(name) {
    const read = this.view?.families.find((f) => f.name === name);
    const said = this.live.families[name] || {};
    return { round: said.round ?? read?.round ?? 0, status: said.status ?? read?.status };
  }

  /**
   * Whether a family's event no longer applies, by the read model's own rule (projections/rows.py): it
   * is of an earlier round, or its family is past it (a job drawn again after a crash was reported: the
   * first outcome stands).
   */
  stale(type, data) {
    const known = this.known(data.family);
    if (data.round !== known.round) return data.round < known.round;
    const open = { FamilyStarted: ["queued"], FamilyCancelled: ["queued", "generating", "cancelled"],
      FamilyAbandoned: ["failed"] }[type] || ["queued", "generating"];
    return known.status !== undefined && !open.includes(known.status);
  }

  event(type, data) {
    this.count();
    if (data.family && data.round !== undefined && type !== "FamilyRetryRequested" && this.stale(type, data)) return;
    const family = data.family ? (this.live.families[data.family] ??= {}) : null;
    const steps = data.steps || this.view?.generation.inferenceSteps || 1;
    if (type === "FamilyPreview") {
      this.previews[data.family] = { src: `data:image/webp;base64,${data.image}`, step: data.step, steps: data.steps,
        round: data.round, width: data.width, height: data.height };
      const shown = this.root.querySelector(`img[data-preview-of="${CSS.escape(data.family)}"]`);
      if (shown) this.showPreview(shown, data.family);
      else this.render(true);
      return;
    }
    if (type === "FamilyProgress") {
      this.stepsSeen += 1;
      this.progress[data.family] = { step: data.step, steps: data.steps };
      if ((this.shown()?.families.find((f) => f.name === data.family) || {}).status !== "generating") {
        Object.assign(family, { status: "generating", round: data.round });
        this.render();
      } else {
        this.showProgress(data.family);
      }
      return;
    }
    if (type === "VariationRequested" || type === "RegenerationRequested") {
      this.live.status = "generating";
      this.live.round = data.round || 1;
      for (const name of data.families || this.view?.families.map((f) => f.name) || []) {
        this.live.families[name] = { status: "queued", error: null, round: this.live.round };
        this.progress[name] = { step: 0, steps };
      }
    } else if (type === "VariationRejected") {
      this.live.status = "rejected";
      this.live.reason = data.reason;
    } else if (type === "FamilyRetryRequested") {
      this.live.status = "generating";
      Object.assign(family, { status: "queued", error: null, round: data.round });
      this.progress[data.family] = { step: 0, steps };
    } else if (type === "FamilyStarted") {
      this.live.status = "generating";
      Object.assign(family, { status: "generating", error: null, round: data.round });
      this.progress[data.family] = { step: 0, steps };
    } else if (FAMILY_ENDS[type]) {
      family.status = FAMILY_ENDS[type];
      if (type === "FamilyFailed") family.error = data.message;
      if (type === "FamilyCancelled") family.error = data.at_step ? `stopped at step ${data.at_step} of ${data.steps}` : "cancelled before drawing";
    } else if (VARIATION_ENDS[type]) {
      this.live.status = VARIATION_ENDS[type];
      for (const name of type === "VariationCancelled" ? data.families : []) { // those it had not drawn
        this.live.families[name] = { ...this.live.families[name], status: "cancelled", round: data.round };
      }
    }
    this.render();
    if (type !== "VariationRejected") {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), 100);
    }
  }

  // --- the page -------------------------------------------------------------------------------------

  skeleton() {
    this.root.classList.remove("hide-zones");
    this.title = h("h1", { id: "variation-title" }, "Variation");
    this.statusBadge = h("span", { class: "status", "data-testid": "status" }, "pending");
    this.liveLine = h("p", { class: "live", "data-testid": "live" });
    this.announcer = h("p", { class: "sr-only", "aria-live": "polite" });
    this.actionStatus = h("p", { class: "action-status", role: "status", "data-testid": "action-status" });
    this.regenerate = h("button", { type: "button", "data-key": "regenerate", onclick: () => this.act("regenerate") }, "Regenerate");
    this.cancel = h("button", { type: "button", "data-key": "cancel", onclick: () => this.act("cancel") }, "Cancel");
    this.body = h("div", { class: "variation-body" });
    this.zonesToggle = h("input", { id: "show-zones", type: "checkbox", checked: true,
      onchange: (e) => this.root.classList.toggle("hide-zones", !e.target.checked) });
    clear(this.root).append(
      h("p", { class: "back" }, h("a", { href: "#/" }, "← Gallery")),
      h("div", { class: "variation-head" }, this.title, h("p", { class: "head-status" }, "Status: ", this.statusBadge)),
      this.liveLine, this.announcer,
      h("div", { class: "actions", role: "group", "aria-label": "Actions" }, this.regenerate, this.cancel,
        h("span", { class: "check" }, this.zonesToggle, h("label", { for: "show-zones" }, "Show safe zones"))),
      this.actionStatus, this.body);
    this.showLive();
  }

  say(text) {
    this.actionStatus.textContent = text;
  }

  showLive() {
    const state = this.follower?.state || "connecting";
    this.liveLine.dataset.updates = String(this.updates);
    this.liveLine.dataset.steps = String(this.stepsSeen);
    this.liveLine.dataset.stream = state;
    const many = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;
    this.liveLine.textContent = `Live: ${state === "open" ? "following" : state} · ${many(this.updates, "update")} · ${many(this.stepsSeen, "step")}`;
  }

  showProgress(name) {
    const bar = this.root.querySelector(`progress[data-family="${CSS.escape(name)}"]`);
    const label = this.root.querySelector(`[data-step-of="${CSS.escape(name)}"]`);
    const { step, steps } = this.progress[name];
    if (bar) {
      bar.max = steps;
      bar.value = step;
    }
    if (label) label.textContent = `step ${step} of ${steps}`;
    this.showLive();
  }

  async act(action, family) {
    const path = family ? `/variations/${this.id}/families/${encodeURIComponent(family)}/retry` : `/variations/${this.id}/${action}`;
    this.say(`${family ? `Retrying ${family}` : action === "cancel" ? "Cancelling" : "Regenerating"}…`);
    try {
      const accepted = await post(path);
      this.say(`Accepted: ${accepted.status}`);
    } catch (error) {
      this.say(`Refused (${error.status || "not sent"}): ${error.message}`);
    }
  }

  showPreview(img, name) {
    const preview = this.previews[name];
    img.src = preview.src;
    img.dataset.step = String(preview.step);
    const caption = img.closest("figure")?.querySelector("figcaption");
    if (caption) caption.textContent = `forming: step ${preview.step} of ${preview.steps}`;
  }

  render(force = false) {
    if (this.closed) return;
    const view = this.shown();
    const status = this.status();
    if (this.statusBadge.textContent !== status) this.announcer.textContent = `Status: ${status}`;
    this.statusBadge.textContent = status;
    this.statusBadge.className = `status status-${status}`;
    this.title.textContent = view ? view.name : "Variation";
    document.title = `${view ? view.name : "Variation"} · imagegen`;
    this.regenerate.disabled = !canSubmit() || !view || !TERMINAL.has(status);
    this.cancel.disabled = !canSubmit() || status !== "generating";
    // drawn again only when what it shows changed: its images are not made anew for nothing
    const drawing = JSON.stringify([view, this.live.reason]);
    if (drawing === this.drawing && !force) return this.showLive();
    this.drawing = drawing;
    const focused = document.activeElement?.dataset?.key;
    if (!view) {
      clear(this.body).append(this.gaveUp
        ? h("p", { class: "error", "data-testid": "not-found" }, `No variation ${this.id} was recorded in ${GIVE_UP_S} s, `,
          "nor is one being drawn: check the link, or the command's status (GET /api/images/commands/{commandId}).")
        : h("p", { class: "hint" }, this.live.reason
          ? `Rejected: ${this.live.reason}` : "Waiting for the variation to be recorded…"));
    } else {
      const set = view.variantSet;
      clear(this.body).append(
        set ? h("p", { class: "set-link" }, `Variant ${set.variant} of the A/B set `,
          h("a", { href: `#/s/${encodeURIComponent(set.name)}`, "data-testid": "set-link" }, set.name)) : null,
        parameters(view), ...view.families.map((f) => this.family(view, f)), meta(view));
    }
    if (focused) this.root.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
    this.showLive();
  }

  family(view, family) {
    const steps = this.progress[family.name]?.steps || view.generation.inferenceSteps || 1;
    const step = family.status === "completed" ? steps : family.status === "queued" ? 0 : this.progress[family.name]?.step || 0;
    const headingId = `family-${family.name}`;
    const version = `${family.round}.${family.attempts}.${family.completedAt || ""}`;
    return h("section", { class: "family", "data-family": family.name, "aria-labelledby": headingId },
      h("div", { class: "family-head" },
        h("h2", { id: headingId }, family.name),
        h("span", { class: `status status-${family.status}`, "data-testid": "family-status" }, family.status),
        h("label", { class: "progress" },
          h("span", { class: "sr-only" }, `${family.name} progress`),
          h("progress", { max: steps, value: step, "data-family": family.name, "data-testid": "progress" })),
        h("span", { class: "step", "data-step-of": family.name }, `step ${step} of ${steps}`),
        family.durationSeconds ? h("span", { class: "hint" }, `drawn in ${family.durationSeconds.toFixed(1)} s`) : null,
        family.status === "failed"
          ? h("button", { type: "button", "data-key": `retry-${family.name}`, disabled: !canSubmit(),
            onclick: () => this.act("retry", family.name) },
            `Retry ${family.name}`)
          : null),
      family.error ? h("p", { class: "error" }, family.error) : null,
      family.status === "completed" && family.width
        ? drawn(view, family, version, { table: this.table, crops: this.crops, root: this.root })
        : this.preview(family));
  }

  /** The picture forming, shown where the master will be until it comes (a preview of this round). */
  preview(family) {
    const preview = this.previews[family.name];
    if (!preview || preview.round !== family.round || family.status !== "generating") return null;
    const img = h("img", { alt: `${family.name}, forming`, width: preview.width, height: preview.height,
      "data-testid": "preview", "data-preview-of": family.name });
    const figure = h("figure", { class: "preview" }, img, h("figcaption", { class: "hint" }));
    this.showPreview(img, family.name);
    return figure;
  }
}
