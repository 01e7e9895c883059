// A variant set (an A/B test): its variants side by side per family and in a platform's mock-up, their
// seeds and statuses, a "choose as winner" action, the current winner marked, the history of choices,
// and the set's stable URLs a page's meta tags point at once. Read again while variants are drawing
// and after a choice, until the read model shows it.

import { canSubmit, get, imageUrl, post } from "./api.js";
import { clear, h, when } from "./dom.js";
import { mock } from "./mocks.js";

const DRAWING = new Set(["generating"]);
const CHOICE_TRIES = 120; // reads, 250 ms apart, waiting for a choice to show
const RECORD_TRIES = 40; // reads, 500 ms apart, waiting for a set just made to be recorded

export class SetPage {
  constructor(root, name) {
    this.root = root;
    this.name = name;
    this.set = null;
    this.closed = false;
    this.recordTries = RECORD_TRIES;
  }

  async open() {
    this.title = h("h1", { id: "set-title" }, `Set ${this.name}`);
    this.status = h("p", { class: "action-status", role: "status", "data-testid": "set-status" });
    this.reason = h("input", { id: "win-reason", type: "text", maxlength: 500, autocomplete: "off",
      placeholder: "e.g. CTR 4.1 % vs 3.2 % over 10 000 views" });
    this.body = h("div", { class: "set-body" });
    clear(this.root).append(
      h("p", { class: "back" }, h("a", { href: "#/" }, "← Gallery")),
      this.title,
      h("div", { class: "field wide" }, h("label", { for: "win-reason" }, "Why it won (kept with the choice)"), this.reason),
      this.status, this.body);
    document.title = `${this.name} · set · imagegen`;
    await this.refresh();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
  }

  async refresh(until = null, tries = 0) {
    try {
      this.set = await get(`/sets/${encodeURIComponent(this.name)}`);
    } catch (error) {
      if (this.closed) return;
      if (error.status === 404 && !this.set && this.recordTries-- > 0) { // just made: the read model follows
        clear(this.body).append(h("p", { class: "hint" }, "Waiting for the set to be recorded…"));
        this.timer = setTimeout(() => this.refresh(until, tries), 500);
        return;
      }
      clear(this.body).append(h("p", { class: "error", "data-testid": "set-missing" }, error.status === 404
        ? `There is no set ${this.name}.` : `The set could not be read: ${error.message}`));
      return;
    }
    if (this.closed) return;
    this.render();
    const waiting = until ? !until(this.set) && tries > 0 : this.set.variations.some((v) => DRAWING.has(v.status));
    if (waiting) this.timer = setTimeout(() => this.refresh(until, until ? tries - 1 : 0), until ? 250 : 1500);
    else if (until && !until(this.set)) this.status.textContent = "The choice is on the log; it is not shown yet.";
  }

  async choose(variant) {
    const before = this.set.choices.length;
    this.status.textContent = `Choosing variant ${variant}…`;
    try {
      await post(`/sets/${encodeURIComponent(this.name)}/winner`, { variant, reason: this.reason.value.trim() });
    } catch (error) {
      this.status.textContent = `Refused (${error.status || "not sent"}): ${error.message}`;
      return;
    }
    clearTimeout(this.timer);
    await this.refresh((set) => set.choices.length > before, CHOICE_TRIES);
    if (this.set.choices.length > before) this.status.textContent = `Variant ${this.set.winner.variant} is the winner.`;
  }

  render() {
    const set = this.set;
    const winner = set.winner?.variant;
    const families = set.variations[0]?.families.map((f) => f.name) || [];
    const columns = (cells) => h("div", { class: "variants", style: `--variants: ${set.variations.length}` }, cells);
    clear(this.body).append(
      h("p", { class: "meta" }, `${set.size} variants · `,
        Object.entries(set.statuses).map(([s, n]) => h("span", { class: `status status-${s}` }, `${n} ${s}`))),
      this.winnerLine(set),
      h("section", { "aria-labelledby": "set-variants" },
        h("h2", { id: "set-variants" }, "Variants"),
        columns(set.variations.map((v) => this.header(v, winner)))),
      ...families.map((family) => h("section", { class: "set-family", "data-family": family, "aria-labelledby": `set-f-${family}` },
        h("h2", { id: `set-f-${family}` }, family),
        columns(set.variations.map((v) => this.cell(v, family, winner))),
        this.mockups(set, family, winner))),
      this.history(set));
  }

  winnerLine(set) {
    if (!set.winner) return h("p", { class: "hint", "data-testid": "winner" }, "No winner chosen yet.");
    const w = set.winner;
    return h("div", { class: "winner-line", "data-testid": "winner", "data-variant": w.variant },
      h("p", {}, h("b", {}, `Winner: variant ${w.variant}`), ` (${w.name}, round ${w.round})`,
        w.reason ? ` — ${w.reason}` : "", ` · chosen ${when(w.chosenAt)}`),
      h("details", {}, h("summary", {}, "Stable URLs for meta tags"),
        h("ul", { class: "set-urls", "data-testid": "set-urls" },
          Object.entries(w.setUrls).map(([name, url]) => h("li", {}, h("code", {}, name), " ", h("a", { href: url }, url))))));
  }

  header(variation, winner) {
    const n = variation.variantSet.variant;
    const won = n === winner;
    return h("div", { class: won ? "variant is-winner" : "variant", "data-testid": "variant", "data-variant": n,
      "aria-current": won ? "true" : null },
      h("h3", {}, h("a", { href: `#/v/${variation.id}` }, `v${n}`), won ? h("span", { class: "badge" }, "Winner") : null),
      h("p", { class: "meta" }, h("span", { class: `status status-${variation.status}` }, variation.status),
        ` seed ${variation.generation.seed}`),
      won ? null : h("button", { type: "button", "data-testid": `choose-${n}`,
        disabled: !canSubmit() || variation.status !== "completed",
        title: canSubmit() ? null : "a read key may not choose", onclick: () => this.choose(n) }, "Choose as winner"));
  }

  cell(variation, family, winner) {
    const f = variation.families.find((x) => x.name === family);
    const n = variation.variantSet.variant;
    const cls = n === winner ? "variant-image is-winner" : "variant-image";
    if (!f || f.status !== "completed" || !f.width) {
      return h("div", { class: cls }, h("p", { class: "hint" }, f ? f.status : "not drawn"));
    }
    return h("figure", { class: cls },
      h("img", { src: imageUrl(variation.name, family, `${f.round}-${f.completedAt || ""}`), alt: `${variation.name}, ${family}`,
        width: f.width, height: f.height, loading: "lazy", style: { aspectRatio: `${f.width} / ${f.height}` } }),
      h("figcaption", { class: "hint" }, `v${n} · ${f.width}×${f.height}`));
  }

  /** The family's first derivative in its platform's mock-up, for every variant: how each would appear. */
  mockups(set, family, winner) {
    const rows = set.variations.map((v) => [v, v.families.find((x) => x.name === family)]).filter(([, f]) => f?.derivatives.length);
    if (!rows.length) return null;
    const name = rows[0][1].derivatives[0].name;
    return h("details", { class: "set-mocks" }, h("summary", {}, `Each variant as ${name}`),
      h("div", { class: "variants", style: `--variants: ${set.variations.length}` }, rows.map(([v, f]) => {
        const d = f.derivatives.find((x) => x.name === name);
        return d ? h("div", { class: v.variantSet.variant === winner ? "is-winner" : "" }, mock(d, {
          src: imageUrl(v.name, d.name, `${f.round}-${f.completedAt || ""}`), alt: `${v.name}, ${d.name}`,
          host: location.host, title: `v${v.variantSet.variant} of ${set.name}`, description: v.generation.prompt,
        })) : null;
      })));
  }

  history(set) {
    return h("section", { "aria-labelledby": "set-history" }, h("h2", { id: "set-history" }, "Choices"),
      set.choices.length
        ? h("ol", { class: "choices", "data-testid": "choices" }, [...set.choices].reverse().map((c) =>
          h("li", { "data-variant": c.variant }, `variant ${c.variant} (${c.name}, round ${c.round})`,
            c.reason ? ` — ${c.reason}` : "", ` · ${when(c.chosenAt)}`)))
        : h("p", { class: "hint" }, "None yet."));
  }
}
