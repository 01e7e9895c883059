// The create form: families from the family table, models from the registry, and the API's own
// answer to a bad request (422 naming each field) shown next to the field it names.

import { canSubmit, families, get, post } from "./api.js";
import { clear, h } from "./dom.js";
import { Follower, variationId } from "./live.js";

const MAX_SEED = 4294967295;
// the API's field names (api/schemas.py, camelCase) and the form's controls that hold them
const FIELDS = {
  name: "f-name", category: "f-category", families: "f-families",
  "generation.prompt": "f-prompt", "generation.negativePrompt": "f-negative", "generation.seed": "f-seed",
  "generation.model": "f-model", "generation.inferenceSteps": "f-steps", "generation.guidanceScale": "f-guidance",
  generation: "f-prompt", isDxJob: "f-dx", variants: "f-variants",
};

let models = [];
let filled = null;

/** The control an API error's field names: `families.1` is the families, `generation` the prompt. */
function controlFor(field) {
  for (let at = field; at; at = at.includes(".") ? at.slice(0, at.lastIndexOf(".")) : "") {
    if (FIELDS[at]) return document.getElementById(FIELDS[at]);
  }
  return null;
}

function clearErrors(form) {
  for (const error of form.querySelectorAll(".field-error")) error.remove();
  for (const invalid of form.querySelectorAll("[aria-invalid]")) {
    invalid.removeAttribute("aria-invalid");
    const kept = (invalid.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
    if (kept.length) invalid.setAttribute("aria-describedby", kept.join(" "));
    else invalid.removeAttribute("aria-describedby");
  }
  const summary = document.getElementById("form-errors");
  clear(summary).hidden = true;
}

function showErrors(form, problem) {
  const summary = document.getElementById("form-errors");
  const unplaced = [];
  let first = null;
  for (const { field, message } of problem.errors) {
    const control = controlFor(field);
    if (!control) {
      unplaced.push(`${field}: ${message}`);
      continue;
    }
    const id = `${control.id}-error`;
    let note = document.getElementById(id);
    if (!note) {
      note = h("p", { id, class: "field-error", "data-testid": "field-error", "data-field": field });
      // at the end of the control's field (a fieldset: its own end), so it is seen next to it
      const holder = control.tagName === "FIELDSET" ? control : control.closest(".field") || control.parentElement;
      holder.append(note);
    }
    note.textContent = note.textContent ? `${note.textContent}; ${message}` : message;
    const marked = control.tagName === "FIELDSET" ? [control, ...control.querySelectorAll("input")] : [control];
    for (const element of marked) {
      element.setAttribute("aria-invalid", "true");
      const described = new Set((element.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
      described.add(id);
      element.setAttribute("aria-describedby", [...described].join(" "));
    }
    first ??= control.tagName === "FIELDSET" ? control.querySelector("input") : control;
  }
  summary.append(h("p", {}, problem.errors.length ? "The variation was not created:" : problem.message));
  if (problem.errors.length) {
    summary.append(h("ul", {}, problem.errors.map((e) => h("li", {}, `${e.field}: ${e.message}`))));
  }
  if (unplaced.length && !problem.errors.length) summary.append(h("p", {}, unplaced.join("; ")));
  summary.hidden = false;
  (first || summary).focus();
}

function body(form) {
  const value = (id) => document.getElementById(id).value.trim();
  const number = (id) => (value(id) === "" ? undefined : Number(value(id)));
  const generation = { prompt: document.getElementById("f-prompt").value, negativePrompt: value("f-negative") };
  if (value("f-model")) generation.model = value("f-model");
  if (document.getElementById("f-fix-seed").checked) generation.seed = number("f-seed");
  if (number("f-steps") !== undefined) generation.inferenceSteps = number("f-steps");
  if (number("f-guidance") !== undefined) generation.guidanceScale = number("f-guidance");
  const sent = {
    name: value("f-name"), category: value("f-category"),
    families: [...form.querySelectorAll("input[name=families]:checked")].map((box) => box.value),
    generation, isDxJob: document.getElementById("f-dx").checked,
  };
  const variants = number("f-variants");
  if (variants !== 1 && variants !== undefined) sent.variants = variants;
  return sent;
}

function modelDefaults() {
  const chosen = models.find((m) => m.name === document.getElementById("f-model").value);
  document.getElementById("f-steps").placeholder = chosen ? String(chosen.defaultSteps) : "model default";
  document.getElementById("f-guidance").placeholder = chosen ? String(chosen.defaultGuidance) : "model default";
}

/** Fill the form's choices (once) from the family table and the model registry. */
export async function showCreate() {
  document.getElementById("create-button").disabled = !canSubmit();
  document.getElementById("create-readonly").hidden = canSubmit();
  filled ??= (async () => {
    const [table, registry] = await Promise.all([families(), get("/models")]);
    const list = clear(document.getElementById("f-families-list"));
    for (const family of table) {
      const id = `f-family-${family.name}`;
      list.append(h("div", { class: "check" },
        h("input", { id, type: "checkbox", name: "families", value: family.name }),
        h("label", { for: id }, h("b", {}, family.name),
          ` ${family.ratio} · ${family.derivatives.map((d) => `${d.name} ${d.width}×${d.height}`).join(", ")}`)));
    }
    models = registry.models;
    const select = document.getElementById("f-model");
    for (const model of models) {
      select.append(h("option", { value: model.name },
        `${model.name}${model.description ? ` — ${model.description}` : ""}${model.available ? "" : " (not downloaded)"}`));
    }
    modelDefaults();
  })().catch((error) => { filled = null; throw error; });
  try {
    await filled;
  } catch (error) {
    document.getElementById("create-status").textContent = `The form's choices could not be loaded: ${error.message}`;
  }
}

export function bindCreate(onCreated) {
  const form = document.getElementById("create");
  const seed = document.getElementById("f-seed");
  document.getElementById("f-fix-seed").addEventListener("change", (event) => {
    seed.disabled = !event.target.checked;
    if (event.target.checked && seed.value === "") seed.value = String(Math.floor(Math.random() * MAX_SEED));
    if (event.target.checked) seed.focus();
  });
  document.getElementById("f-model").addEventListener("change", modelDefaults);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("create-status");
    const button = document.getElementById("create-button");
    clearErrors(form);
    button.disabled = true;
    status.textContent = "Sending…";
    const sent = body(form);
    // follow it before posting it, so the view misses none of its drawing (a set: its page follows it)
    const predicted = sent.variants ? null : await variationId(sent.name).catch(() => null);
    let follower = predicted ? new Follower(predicted) : null;
    try {
      await follower?.opened;
      const accepted = await post("/variations", sent);
      status.textContent = `Accepted: ${accepted.name || accepted.set}`;
      if (follower && follower.id !== accepted.id) {
        follower.close();
        follower = null;
      }
      onCreated(accepted, follower);
    } catch (problem) {
      follower?.close();
      status.textContent = problem.status ? `Not created (${problem.status})` : `Not sent: ${problem.message}`;
      if (problem.status) showErrors(form, problem);
    } finally {
      button.disabled = !canSubmit();
    }
  });
}
