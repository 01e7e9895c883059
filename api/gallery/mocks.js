// Where each derivative appears: a mock of the platform around the image, drawn at the image's true
// aspect ratio (its width and height attributes), with the family table's safe zones over it.
// The mock is chosen by the derivative's name; a name not listed gets a plain web page.

import { h, percent } from "./dom.js";

const KINDS = {
  "og-image": "link", "facebook-link": "link", "linkedin-share": "link", "og-square": "link",
  "x-large-card": "x-large", "twitter-card": "x-summary",
  "instagram-story": "story", "instagram-post": "instagram", "instagram-portrait": "instagram",
  "youtube-thumbnail": "youtube", "facebook-cover": "cover", "linkedin-banner": "cover",
  "profile": "avatar", "pinterest-pin": "pin",
};

const LABELS = {
  link: "Open Graph link preview", "x-large": "X (Twitter) large card", "x-summary": "X (Twitter) summary card",
  story: "Instagram story", instagram: "Instagram feed post", youtube: "YouTube thumbnail",
  cover: "Page cover", avatar: "Profile picture", pin: "Pinterest pin", page: "Web page banner",
};

export const kindOf = (name) => KINDS[name] || "page";

/** Where a zone lies, in words: "top 14 %", "bottom-right corner 15 % × 12 %". */
export function whereIs(zone) {
  const pc = (f) => `${Math.round(f * 100)} %`;
  const full = (f) => f >= 0.999;
  const right = zone.left + zone.width >= 0.999, bottom = zone.top + zone.height >= 0.999;
  if (full(zone.width) && zone.top === 0) return `top ${pc(zone.height)}`;
  if (full(zone.width) && bottom) return `bottom ${pc(zone.height)}`;
  if (full(zone.height) && zone.left === 0) return `left ${pc(zone.width)}`;
  if (full(zone.height) && right) return `right ${pc(zone.width)}`;
  const corner = `${bottom ? "bottom" : zone.top === 0 ? "top" : "middle"}-${right ? "right" : zone.left === 0 ? "left" : "centre"}`;
  return `${corner} ${pc(zone.width)} × ${pc(zone.height)}`;
}

/** The image at its true aspect ratio, with the safe zones and any of the platform's UI (`over`) on top. */
function frame(d, ctx, className = "", ...over) {
  const zones = (ctx.zones || []).map((zone) => h("div", {
    // its label on its inner edge, clear of the platform's own UI along the image's edge
    class: zone.top === 0 && zone.height < 1 ? "safe-zone edge-top" : "safe-zone", "data-testid": "safe-zone", "aria-hidden": "true", title: zone.note,
    style: { left: percent(zone.left), top: percent(zone.top), width: percent(zone.width), height: percent(zone.height) },
  }, h("span", {}, zone.note)));
  return h("div", { class: `frame ${className}`, style: { aspectRatio: `${d.width} / ${d.height}` } },
    h("img", {
      src: ctx.src, alt: ctx.alt, width: d.width, height: d.height, loading: "lazy",
      "data-testid": "derivative", "data-derivative": d.name,
    }),
    over, zones);
}

const avatar = () => h("span", { class: "avatar", "aria-hidden": "true" });

const BUILD = {
  link: (d, ctx) => h("div", { class: "link-card" }, frame(d, ctx),
    h("div", { class: "link-text" },
      h("p", { class: "host" }, ctx.host), h("p", { class: "title" }, ctx.title), h("p", { class: "desc" }, ctx.description))),
  "x-large": (d, ctx) => h("div", { class: "x-post" },
    h("p", { class: "x-head" }, avatar(), h("b", {}, "Your brand"), " @yourbrand · 1h"),
    h("p", { class: "x-text" }, ctx.description),
    h("div", { class: "x-card" }, frame(d, ctx, "", h("span", { class: "x-domain", "aria-hidden": "true" }, ctx.host)))),
  "x-summary": (d, ctx) => h("div", { class: "x-post" },
    h("p", { class: "x-head" }, avatar(), h("b", {}, "Your brand"), " @yourbrand · 1h"),
    h("div", { class: "x-summary" }, h("div", { class: "x-thumb" }, frame(d, ctx)),
      h("div", { class: "link-text" }, h("p", { class: "host" }, ctx.host), h("p", { class: "title" }, ctx.title)))),
  story: (d, ctx) => h("div", { class: "phone" }, frame(d, ctx, "story",
    h("div", { class: "story-top", "aria-hidden": "true" }, h("span", { class: "story-bars" }),
      h("span", { class: "story-user" }, avatar(), "yourbrand · 2h")),
    h("div", { class: "story-bottom", "aria-hidden": "true" }, h("span", { class: "reply" }, "Send message")))),
  instagram: (d, ctx) => h("div", { class: "ig-post" },
    h("p", { class: "ig-head" }, avatar(), h("b", {}, "yourbrand")), frame(d, ctx),
    h("p", { class: "ig-actions", "aria-hidden": "true" }, "♡  ◯  ➤"),
    h("p", { class: "ig-caption" }, h("b", {}, "yourbrand "), ctx.description)),
  youtube: (d, ctx) => h("div", { class: "yt" },
    frame(d, ctx, "", h("span", { class: "duration", "aria-hidden": "true" }, "4:12")),
    h("p", { class: "yt-title" }, ctx.title), h("p", { class: "yt-meta" }, "Your channel · 1.2K views · 1 day ago")),
  cover: (d, ctx) => h("div", { class: "cover" }, frame(d, ctx),
    h("p", { class: "cover-page" }, avatar(), h("b", {}, "Your brand"))),
  avatar: (d, ctx) => h("div", { class: "avatar-mock" }, frame(d, ctx, "round"), h("b", {}, "Your brand")),
  pin: (d, ctx) => h("div", { class: "pin" }, frame(d, ctx, "", h("span", { class: "pin-save", "aria-hidden": "true" }, "Save")),
    h("p", { class: "title" }, ctx.title)),
  page: (d, ctx) => h("div", { class: "browser" },
    h("p", { class: "browser-bar", "aria-hidden": "true" }, h("span", { class: "dots" }), ctx.host),
    frame(d, ctx), h("p", { class: "browser-lines", "aria-hidden": "true" })),
};

/**
 * The mock of derivative `d` (from the variation's JSON). `ctx`: src (its image URL), alt, zones (its
 * safe zones from the family table), host, title and description (what the platform shows with it).
 */
export function mock(d, ctx) {
  const kind = kindOf(d.name);
  const zones = ctx.zones || [];
  const legend = zones.length
    ? h("p", { class: "zones-legend" }, "Safe zones (platform UI covers them): ",
      zones.map((z, i) => [i ? "; " : "", `${whereIs(z)}${z.note ? ` — ${z.note}` : ""}`]))
    : null;
  return h("figure", { class: `mock mock-${kind}`, "data-mock": d.name, "data-kind": kind, "data-testid": "mock" },
    BUILD[kind](d, ctx),
    h("figcaption", {}, h("b", {}, LABELS[kind]), ` · ${d.name} ${d.width}×${d.height}`),
    legend);
}
