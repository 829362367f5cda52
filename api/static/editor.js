// The cutout editor (issue 27): a dialog over the page where the mask of a job's cutout
// is corrected with brushes and saved through PUT /v1/jobs/{id}/mask.
//
// editor.open({job, file?, resultBlob?, name?, nav?, onSaved?}) opens a job: `file` is
// the photo when the page has it (else GET /v1/jobs/{id}/input), `resultBlob` the job's
// result when already fetched, `nav` {position, prev, next} steps through a review list,
// `onSaved(job, blob)` hears of each new version. The mask itself lives in maskedit.js,
// zoom and pointers in viewport.js, the requests in editorio.js. Its shortcuts are the
// ones the page's help lists (index.html, #shortcuts).

import { MaskModel } from "./maskedit.js";
import { Viewport } from "./viewport.js";
import * as io from "./editorio.js";

const $ = (id) => document.getElementById(id);
const tool = { mode: "erase", size: 40, softness: 0, snap: false };
let el = null;
let viewport = null;
let session = null; // the open job: {job, photo, model, nav, onSaved, changes, saved, saving}
let handTool = false;
let spaceHeld = false;
let opening = 0; // each open() has a number: a slower earlier one stops when it changes
let returnFocus = null; // what had the focus before the editor opened, or how to find it

function bindElements() {
  const ids = ["editor", "editor-name", "editor-nav", "editor-prev", "editor-next", "editor-position",
    "editor-close", "editor-snap", "editor-size", "editor-size-value", "editor-softness",
    "editor-softness-value", "editor-undo", "editor-redo", "editor-zoom-out", "editor-zoom",
    "editor-zoom-in", "editor-fit", "editor-before", "editor-backdrop", "editor-save", "editor-view",
    "editor-canvas", "editor-cursor", "editor-busy", "editor-busy-text", "editor-status"];
  el = {};
  for (const id of ids) el[id.replace("editor-", "").replace(/-(\w)/g, (_, c) => c.toUpperCase())] = $(id);
  el.tools = [...el.editor.querySelectorAll("[data-tool]")];
}

function say(text) {
  el.status.textContent = text;
}

function busy(text) {
  el.busy.hidden = !text;
  el.busyText.textContent = text || "";
}

// ---------------------------------------------------------------------------------------
// drawing the view: the photo through the mask (or the photo alone, "Original")

function paint(rect) {
  if (!session || !session.model) return;
  const { model, photo } = session;
  const ctx = el.canvas.getContext("2d");
  const r = rect || { x: 0, y: 0, w: model.width, h: model.height };
  ctx.save();
  ctx.beginPath();
  ctx.rect(r.x, r.y, r.w, r.h);
  ctx.clip();
  ctx.clearRect(r.x, r.y, r.w, r.h);
  ctx.drawImage(photo.bitmap, r.x, r.y, r.w, r.h, r.x, r.y, r.w, r.h);
  if (el.before.getAttribute("aria-pressed") !== "true") {
    ctx.globalCompositeOperation = "destination-in";
    ctx.drawImage(model.mask, r.x, r.y, r.w, r.h, r.x, r.y, r.w, r.h);
    ctx.globalCompositeOperation = "source-over";
    ctx.globalAlpha = 0.45;
    ctx.drawImage(model.tint, r.x, r.y, r.w, r.h, r.x, r.y, r.w, r.h);
  }
  ctx.restore();
}

function changed(rect) {
  paint(rect);
}

function syncControls() {
  const model = session && session.model;
  const dirty = Boolean(session && session.changes !== session.saved);
  el.undo.disabled = !model || !model.canUndo;
  el.redo.disabled = !model || !model.canRedo;
  el.save.disabled = !model || !dirty || session.saving;
  el.save.textContent = session && session.saving ? "Saving…" : "Save";
  for (const button of el.tools) {
    const on = button.dataset.tool === (handTool ? "pan" : tool.mode);
    button.setAttribute("aria-checked", String(on));
    button.tabIndex = on ? 0 : -1;
  }
  el.snap.setAttribute("aria-pressed", String(tool.snap));
  el.size.value = String(tool.size);
  el.sizeValue.textContent = `${tool.size} px`;
  el.softness.value = String(Math.round(tool.softness * 100));
  el.softnessValue.textContent = `${Math.round(tool.softness * 100)}%`;
  el.view.classList.toggle("is-panning", handTool || spaceHeld);
  el.view.dataset.tool = handTool ? "pan" : tool.mode;
  if (viewport) viewport.panning = handTool || spaceHeld;
}

function backdrop() {
  const value = el.backdrop.value;
  const colour = session && session.job.options && session.job.options.bg_color;
  el.canvas.classList.toggle("checkerboard", value === "checker" || (value === "job" && !colour));
  el.canvas.style.backgroundColor = value === "white" ? "#ffffff" : value === "black" ? "#000000"
    : value === "job" && colour ? colour : "";
}

// ---------------------------------------------------------------------------------------
// strokes, from viewport.js

const draw = {
  start(x, y, pressure) {
    if (!session || !session.model || session.saving) return;
    session.model.begin({ ...tool }, x, y, pressure);
  },
  move(x, y, pressure) {
    if (session && session.model) session.model.move(x, y, pressure);
  },
  end() {
    if (!session || !session.model) return;
    if (session.model.end()) {
      session.changes++;
      syncControls();
    }
  },
  cancel() {
    if (session && session.model) session.model.cancel();
  },
  hover(point, zoom) {
    const hidden = handTool || spaceHeld || !session || !session.model;
    el.cursor.hidden = hidden;
    if (hidden) return;
    const d = Math.max(4, tool.size * zoom);
    el.cursor.style.width = `${d}px`;
    el.cursor.style.height = `${d}px`;
    el.cursor.style.transform = `translate(${point.x - d / 2}px, ${point.y - d / 2}px)`;
  },
};

function undo() {
  if (!session || !session.model || !session.model.canUndo) return;
  session.model.undo();
  session.changes++;
  syncControls();
  say("Undone.");
}

function redo() {
  if (!session || !session.model || !session.model.canRedo) return;
  session.model.redo();
  session.changes++;
  syncControls();
  say("Redone.");
}

// ---------------------------------------------------------------------------------------
// opening, saving, closing

function unsavedOk() {
  if (!session || session.changes === session.saved) return true;
  return window.confirm("Leave this cutout without saving? Your changes to it are lost.");
}

// `focusBack`: where the focus goes on close when the opener has left the page (a list
// drawn again); by default the element that had the focus
export async function open({ job, file = null, resultBlob = null, name = "", nav = null, onSaved = null, focusBack = null }) {
  if (!el) init();
  if (!el.editor.open) {
    const opener = document.activeElement;
    returnFocus = () => (opener && opener.isConnected ? opener : focusBack && focusBack());
  }
  const ticket = ++opening;
  session = { job, photo: null, model: null, nav, onSaved, changes: 0, saved: 0, saving: false };
  el.name.textContent = name || job.id;
  el.nav.hidden = !nav;
  if (nav) {
    el.position.textContent = nav.position || "";
    el.prev.disabled = !nav.prev;
    el.next.disabled = !nav.next;
  }
  const colour = job.options && job.options.bg_color;
  el.backdrop.querySelector('option[value="job"]').disabled = !colour;
  el.backdrop.value = colour ? "job" : "checker";
  backdrop();
  el.editor.dataset.jobId = job.id;
  el.editor.dataset.state = "opening";
  el.canvas.getContext("2d").clearRect(0, 0, el.canvas.width, el.canvas.height); // not the last job's
  if (!el.editor.open) el.editor.showModal();
  busy("Opening the photo…");
  say("");
  syncControls();
  try {
    const photo = await io.photoOf(job, file);
    if (ticket !== opening) return;
    const alpha = await io.startingMask(job, resultBlob, photo, busy);
    if (ticket !== opening) return;
    session.photo = photo;
    el.canvas.width = photo.bitmap.width;
    el.canvas.height = photo.bitmap.height;
    session.model = new MaskModel(photo.bitmap, alpha, changed);
    paint(null);
    viewport.setSize(photo.bitmap.width, photo.bitmap.height);
    el.editor.dataset.width = String(photo.bitmap.width);
    el.editor.dataset.height = String(photo.bitmap.height);
    el.editor.dataset.state = "ready";
    busy("");
    say(`${photo.bitmap.width}×${photo.bitmap.height} · version ${io.versionOf(job)}. Paint with Erase or Restore, then Save.`);
    el.view.focus({ preventScroll: true });
  } catch (error) {
    if (ticket !== opening) return;
    busy("");
    el.editor.dataset.state = "failed";
    say(`The cutout could not be opened: ${error.message}`);
  }
  syncControls();
}

async function save() {
  if (!session || !session.model || session.saving || session.changes === session.saved) return;
  const current = session;
  current.saving = true;
  el.editor.dataset.state = "saving";
  syncControls();
  const changes = current.changes;
  try {
    const png = await current.model.png();
    const { job, blob } = await io.saveMask(current.job, png, (text) => { if (session === current) say(text); });
    current.job = job;
    current.saved = changes;
    if (current.onSaved) current.onSaved(job, blob);
    if (session !== current) return; // the editor moved on meanwhile: the list shows it
    el.editor.dataset.version = String(io.versionOf(job));
    el.editor.dataset.state = "saved";
    saved(job, blob);
  } catch (error) {
    if (session !== current) return;
    el.editor.dataset.state = "ready";
    say(`Not saved: ${error.message}`);
  } finally {
    current.saving = false;
    if (session === current) syncControls();
  }
}

// "Saved: version N" with a link to download that version
function saved(job, blob) {
  const version = io.versionOf(job);
  const format = (job.options && job.options.format) || "png";
  const extension = { jpeg: "jpg", zip: "zip", webp: "webp" }[format] || "png";
  if (el.status.dataset.url) URL.revokeObjectURL(el.status.dataset.url);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${job.id}-v${version}.${extension}`;
  link.textContent = `Download version ${version}`;
  el.status.dataset.url = link.href;
  el.status.replaceChildren(`Saved: version ${version} of the cutout is ready. `, link);
}

function close() {
  if (!unsavedOk()) return;
  opening++;
  session = null;
  el.editor.close();
  const target = returnFocus && returnFocus();
  if (target) target.focus();
}

// ---------------------------------------------------------------------------------------
// keyboard

function onKey(event) {
  const target = event.target;
  if (target.tagName === "SELECT" || (target.tagName === "INPUT" && target.type !== "range")) return;
  const key = event.key;
  const mod = event.ctrlKey || event.metaKey;
  const handled = () => { event.preventDefault(); syncControls(); };
  if (mod && key.toLowerCase() === "z") { if (event.shiftKey) redo(); else undo(); return handled(); }
  if (mod && key.toLowerCase() === "y") { redo(); return handled(); }
  if (mod && key.toLowerCase() === "s") { save(); return handled(); }
  if (event.altKey && (key === "ArrowLeft" || key === "ArrowRight")) {
    const step = session && session.nav && (key === "ArrowLeft" ? session.nav.prev : session.nav.next);
    if (step && unsavedOk()) step();
    return handled();
  }
  if (mod || event.altKey) return;
  if (key === " " && target.tagName !== "BUTTON") { spaceHeld = true; return handled(); }
  const actions = {
    e: () => { tool.mode = "erase"; handTool = false; },
    r: () => { tool.mode = "restore"; handTool = false; },
    h: () => { handTool = !handTool; },
    b: () => { tool.snap = !tool.snap; },
    o: () => toggleBefore(),
    "[": () => { if (event.shiftKey) tool.softness = Math.max(0, tool.softness - 0.1); else tool.size = Math.max(2, Math.round(tool.size / 1.2)); },
    "]": () => { if (event.shiftKey) tool.softness = Math.min(1, tool.softness + 0.1); else tool.size = Math.min(400, Math.round(tool.size * 1.2) + 1); },
    "{": () => { tool.softness = Math.max(0, tool.softness - 0.1); },
    "}": () => { tool.softness = Math.min(1, tool.softness + 0.1); },
    "+": () => viewport.zoomIn(),
    "=": () => viewport.zoomIn(),
    "-": () => viewport.zoomOut(),
    "0": () => viewport.fit(),
  };
  const action = actions[key.length === 1 ? key.toLowerCase() : key];
  if (action) { action(); handled(); }
}

function toggleBefore() {
  const on = el.before.getAttribute("aria-pressed") !== "true";
  el.before.setAttribute("aria-pressed", String(on)); // pressed: the original is shown
  el.editor.dataset.showing = on ? "original" : "cutout";
  paint(null);
}

// ---------------------------------------------------------------------------------------

export function init() {
  if (el) return;
  bindElements();
  // the page's Help lists the shortcuts (index.html, #shortcuts): the same list in here
  const shortcuts = $("shortcuts");
  if (shortcuts) {
    const copy = shortcuts.cloneNode(true);
    copy.removeAttribute("id");
    $("editor-help-panel").replaceChildren(copy);
  }
  viewport = new Viewport(el.view, el.canvas, draw, (zoom) => {
    el.zoom.textContent = `${Math.round(zoom * 100)}%`;
    el.editor.dataset.zoom = zoom.toFixed(4);
  });
  for (const button of el.tools) {
    button.addEventListener("click", () => {
      handTool = button.dataset.tool === "pan";
      if (!handTool) tool.mode = button.dataset.tool;
      syncControls();
    });
  }
  // the tools are one radio group: arrow keys move the choice (and the focus) along it
  el.tools[0].parentElement.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    if (!step || event.altKey) return;
    event.preventDefault();
    event.stopPropagation();
    const at = el.tools.indexOf(document.activeElement);
    const next = el.tools[(at + step + el.tools.length) % el.tools.length];
    next.click();
    next.focus();
  });
  el.snap.addEventListener("click", () => { tool.snap = !tool.snap; syncControls(); });
  el.size.addEventListener("input", () => { tool.size = Number(el.size.value); syncControls(); });
  el.softness.addEventListener("input", () => { tool.softness = Number(el.softness.value) / 100; syncControls(); });
  el.undo.addEventListener("click", undo);
  el.redo.addEventListener("click", redo);
  el.zoomIn.addEventListener("click", () => viewport.zoomIn());
  el.zoomOut.addEventListener("click", () => viewport.zoomOut());
  el.fit.addEventListener("click", () => viewport.fit());
  el.before.addEventListener("click", toggleBefore);
  el.backdrop.addEventListener("change", backdrop);
  el.save.addEventListener("click", save);
  el.close.addEventListener("click", close);
  el.prev.addEventListener("click", () => { if (session && session.nav && session.nav.prev && unsavedOk()) session.nav.prev(); });
  el.next.addEventListener("click", () => { if (session && session.nav && session.nav.next && unsavedOk()) session.nav.next(); });
  el.editor.addEventListener("cancel", (event) => { event.preventDefault(); close(); });
  el.editor.addEventListener("keydown", onKey);
  el.editor.addEventListener("keyup", (event) => { if (event.key === " ") { spaceHeld = false; syncControls(); } });
  el.view.addEventListener("pointerleave", () => { el.cursor.hidden = true; });
  window.addEventListener("resize", () => { if (session && session.model) viewport.resized(); });
  // closing or reloading the tab with unsaved strokes asks first, as Close does
  window.addEventListener("beforeunload", (event) => {
    if (session && session.model && session.changes !== session.saved) event.preventDefault();
  });
  syncControls();
}
