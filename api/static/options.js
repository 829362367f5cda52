// The options form (the sidebar): the models offered, the controls that depend on each
// other, and the API's options object read from it. app.js calls these.

import { ApiError, api } from "./http.js";
import * as quality from "./quality.js";

const MODEL_LABELS = { u2net: "u2net — best quality", u2netp: "u2netp — fast, lighter" };
const $ = (id) => document.getElementById(id);
let fields = null;

// the form's controls, looked up once
function form() {
  if (fields) return fields;
  fields = {
    model: $("model"), format: $("format"), formatHint: $("format-hint"),
    transparent: $("transparent"), bgColor: $("bg-color"), bgColorValue: $("bg-color-value"),
    maskOnly: $("mask-only"), postProcess: $("post-process"), fast: $("fast"), refine: $("refine"),
    alphaMatting: $("alpha-matting"), amFg: $("am-fg"), amBg: $("am-bg"), amErode: $("am-erode"),
    crop: $("crop"), margin: $("margin"), canvasW: $("canvas-w"), canvasH: $("canvas-h"), fill: $("fill"),
    shadow: $("shadow"),
  };
  return fields;
}

// the models this caller may use: built-in, global and the tenant's own (GET /v1/models)
export async function loadModels(fallback) {
  try {
    const listed = await api("/v1/models");
    const names = (listed.models || []).map((model) => model.name);
    return names.length ? names : fallback;
  } catch (_error) {
    return fallback;
  }
}

export function applyModels(models) {
  const f = form();
  if (!Array.isArray(models) || !models.length) return;
  const current = f.model.value;
  f.model.replaceChildren(...models.map((name) => {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = MODEL_LABELS[name] || name;
    return option;
  }));
  f.model.value = models.includes(current) ? current : models[0];
}

// the form as the API's options object; ApiError (kind "client") for a value out of range
export function readOptions() {
  const f = form();
  const options = { model: f.model.value, format: f.format.value };
  const int = (input, label) => {
    const value = Number(input.value);
    if (input.value === "" || !Number.isInteger(value) || value < Number(input.min) || value > Number(input.max)) {
      throw new ApiError(`${label} must be a whole number from ${input.min} to ${input.max}.`, { kind: "client" });
    }
    return value;
  };
  if (!f.transparent.checked || options.format === "jpeg") options.bg_color = f.bgColor.value;
  if (f.shadow.checked) options.shadow = true;
  if (f.maskOnly.checked) options.mask_only = true;
  if (f.postProcess.checked) options.post_process = true;
  if (f.fast.checked) options.fast = true;
  if (f.refine.checked) options.refine = true;
  quality.readScore(options);
  if (f.alphaMatting.checked) {
    options.alpha_matting = true;
    options.alpha_matting_foreground_threshold = int(f.amFg, "Foreground threshold");
    options.alpha_matting_background_threshold = int(f.amBg, "Background threshold");
    options.alpha_matting_erode_size = int(f.amErode, "Erode size");
  }
  if (f.crop.checked) {
    options.crop = true;
    options.margin = int(f.margin, "Margin");
  }
  const w = f.canvasW.value.trim();
  const h = f.canvasH.value.trim();
  if (w || h) {
    if (!w || !h) throw new ApiError("Give both the canvas width and height, or neither.", { kind: "client" });
    options.canvas = `${int(f.canvasW, "Canvas width")}x${int(f.canvasH, "Canvas height")}`;
    const fill = Number(f.fill.value);
    if (!(fill > 0 && fill <= 1)) throw new ApiError("Fill must be a number above 0 and at most 1.", { kind: "client" });
    options.fill = fill;
  }
  return options;
}

export function syncOptionControls() {
  const f = form();
  const jpeg = f.format.value === "jpeg";
  if (jpeg) f.transparent.checked = false;
  f.transparent.disabled = jpeg;
  f.formatHint.hidden = !jpeg;
  f.bgColor.disabled = f.transparent.checked;
  f.bgColorValue.textContent = f.transparent.checked ? "none" : f.bgColor.value;
  for (const input of [f.amFg, f.amBg, f.amErode]) input.disabled = !f.alphaMatting.checked;
  f.margin.disabled = !f.crop.checked;
}
