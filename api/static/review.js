// A batch's review list (issue 27), reachable by URL so a shop links it from its own
// tools: /#/batches/<batch id>/review (the cutouts that need a look) or
// /#/batches/<batch id>/review?show=all (every scored cutout); /?batch=<id>[&show=all]
// becomes the same address. Worst score first, with
// thumbnails, a page at a time (GET /v1/batches/{id}/jobs?order=score[&review=true],
// following `next_cursor`; Previous goes back through the cursors already seen). Each
// cutout opens in the editor (editor.js), whose Previous and Next walk this list.

import { api } from "./http.js";
import * as quality from "./quality.js";
import * as editor from "./editor.js";

const ROUTE = /^#\/batches\/([A-Za-z0-9_-]+)\/review\/?(?:\?(.*))?$/;
const PAGE_SIZE = 24;
const THUMB_BYTES = 8 * 1024 * 1024; // a result larger than this shows no thumbnail
const $ = (id) => document.getElementById(id);
const PAGE_TITLE = document.title;

const state = {
  batchId: null,
  show: "review", // review | all
  cursors: [""], // the cursor of each page seen, the first page's is ""
  page: 0,
  jobs: [],
  counts: {}, // the batch's counts, for "3 of 12"
  next: null,
  ticket: 0,
  ready: false, // the server's facts are read (and the key, if it needs one, accepted)
  thumbs: new Map(), // job id -> {version, url, blob}: the result shown and given to the editor
};

export function parseRoute(hash) {
  const match = ROUTE.exec(hash || "");
  if (!match) return null;
  const params = new URLSearchParams(match[2] || "");
  return { batchId: match[1], show: params.get("show") === "all" ? "all" : "review" };
}

export function active() {
  return state.batchId !== null;
}

// follow the address: show the list for its batch, or hand the page back to the upload
function sync() {
  const route = parseRoute(location.hash);
  document.body.dataset.view = route ? "review" : "upload";
  $("review").hidden = !route;
  if (!route) {
    state.batchId = null;
    document.title = PAGE_TITLE;
    return;
  }
  if (route.batchId !== state.batchId || route.show !== state.show) {
    state.batchId = route.batchId;
    state.show = route.show;
    state.cursors = [""];
    state.page = 0;
    $("review-filter").value = route.show;
    document.title = `Review ${route.batchId} — Cutout`;
    if (state.ready) load();
  }
}

// app.js: GET /v1/info answered (with the key, when the server wants one)
export function ready() {
  state.ready = true;
  if (active()) load();
}

function showAlert(text) {
  const alert = $("review-alert");
  alert.hidden = !text;
  alert.textContent = text || "";
}

async function load() {
  const ticket = ++state.ticket;
  const batchId = state.batchId;
  const list = $("review-list");
  list.setAttribute("aria-busy", "true");
  showAlert("");
  const params = new URLSearchParams({ order: "score", limit: String(PAGE_SIZE) });
  if (state.show === "review") params.set("review", "true");
  const cursor = state.cursors[state.page];
  if (cursor) params.set("cursor", cursor);
  try {
    const [batch, page] = await Promise.all([
      api(`/v1/batches/${encodeURIComponent(batchId)}`),
      api(`/v1/batches/${encodeURIComponent(batchId)}/jobs?${params}`),
    ]);
    if (ticket !== state.ticket) return;
    state.jobs = page.items || [];
    state.next = page.next_cursor || null;
    state.counts = batch.counts || {};
    renderCounts(batch);
    renderList();
  } catch (error) {
    if (ticket !== state.ticket) return;
    state.jobs = [];
    state.next = null;
    $("review-counts").textContent = "";
    showAlert(error.status === 404 ? `No batch ${batchId} for this API key.` : `The review list could not be loaded: ${error.message}`);
    renderList();
  } finally {
    if (ticket === state.ticket) list.setAttribute("aria-busy", "false");
  }
}

function renderCounts(batch) {
  const counts = batch.counts || {};
  const n = counts.review || 0;
  const done = counts.succeeded || 0;
  const working = (counts.queued || 0) + (counts.processing || 0);
  const cutouts = done === 1 ? "cutout" : "cutouts";
  let text = n ? `${n} of ${done} ${cutouts} ${n === 1 ? "needs" : "need"} a look.` : `None of ${done} ${cutouts} needs a look.`;
  if (working) text += ` ${working} still in progress.`;
  const counter = $("review-counts");
  counter.textContent = text;
  counter.classList.toggle("is-review", n > 0);
  $("review-batch").textContent = batch.id;
}

function nameOf(job) {
  const meta = job.metadata || {};
  if (typeof meta.name === "string" && meta.name) return meta.name;
  if (typeof meta.sku === "string" && meta.sku) return meta.sku;
  return Number.isInteger(job.item_index) ? `Item ${job.item_index + 1}` : job.id;
}

function renderList() {
  const list = $("review-list");
  const template = $("item-template");
  const nodes = state.jobs.map((job, index) => {
    const node = template.content.firstElementChild.cloneNode(true);
    const item = { status: "succeeded", job };
    node.dataset.jobId = job.id;
    node.dataset.status = "succeeded";
    node.querySelector(".item-name").textContent = nameOf(job);
    const version = (job.result && job.result.version) || 1;
    node.querySelector(".item-state").textContent = version > 1 ? `Corrected · version ${version}` : "";
    const button = node.querySelector(".item-select");
    button.setAttribute("aria-label", `Edit ${nameOf(job)}: ${quality.itemLabel(item)}`);
    button.addEventListener("click", () => openAt(index));
    const edit = node.querySelector(".item-download");
    edit.replaceWith(Object.assign(document.createElement("button"), {
      type: "button", className: "button button-small item-edit", textContent: "Edit",
    }));
    node.querySelector(".item-edit").setAttribute("aria-label", `Edit ${nameOf(job)}`);
    node.querySelector(".item-edit").addEventListener("click", () => openAt(index));
    quality.markItem(node, item);
    const flags = (job.result && job.result.quality && job.result.quality.flags) || [];
    if (flags.length) {
      const why = document.createElement("span");
      why.className = "item-flags";
      why.textContent = flags.map(quality.flagText).join(" ");
      node.querySelector(".item-text").append(why);
    }
    thumbnail(job, node.querySelector("img"));
    return node;
  });
  list.replaceChildren(...nodes);
  const empty = $("review-empty");
  empty.hidden = nodes.length > 0 || Boolean($("review-alert").textContent);
  $("review-empty-text").textContent = state.show === "review"
    ? "Nothing here needs a look." : "No scored cutouts in this batch yet.";
  $("review-show-all").hidden = state.show !== "review";
  $("review-prev").disabled = state.page === 0;
  $("review-next").disabled = !state.next;
  $("review-page").textContent = `Page ${state.page + 1}`;
  $("review-pager").hidden = state.page === 0 && !state.next;
}

async function thumbnail(job, img) {
  const result = job.result || {};
  const version = result.version || 1;
  const known = state.thumbs.get(job.id);
  if (known && known.version === version) { img.src = known.url; return; }
  if (job.options && job.options.format === "zip") {
    img.replaceWith(Object.assign(document.createElement("span"), { className: "item-thumb-note", textContent: "ZIP" }));
    return;
  }
  if (!result.url || (result.bytes || 0) > THUMB_BYTES) return;
  try {
    const blob = await api(result.url, { as: "blob" });
    if (known) URL.revokeObjectURL(known.url);
    const url = URL.createObjectURL(blob);
    state.thumbs.set(job.id, { version, url, blob });
    img.src = url;
  } catch (_) {
    // no thumbnail: the item still opens
  }
}

function replaceJob(job, blob) {
  const index = state.jobs.findIndex((candidate) => candidate.id === job.id);
  if (index < 0) return;
  state.jobs[index] = job;
  const known = state.thumbs.get(job.id);
  if (known) URL.revokeObjectURL(known.url);
  state.thumbs.delete(job.id);
  // a ZIP is no picture: such a cutout shows no thumbnail, as when the list was loaded
  if (!(job.options && job.options.format === "zip")) {
    state.thumbs.set(job.id, { version: (job.result && job.result.version) || 1, url: URL.createObjectURL(blob), blob });
  }
  renderList();
}

// the editor on the list's `index`-th cutout; its Previous and Next cross pages
function openAt(index) {
  const job = state.jobs[index];
  if (!job) return;
  const last = index === state.jobs.length - 1;
  const nav = {
    position: `${state.page * PAGE_SIZE + index + 1} of ${total()}`,
    prev: index > 0 || state.page > 0 ? () => step(index - 1) : null,
    next: !last || state.next ? () => step(index + 1) : null,
  };
  const thumb = state.thumbs.get(job.id);
  const current = thumb && thumb.version === ((job.result && job.result.version) || 1);
  const resultBlob = current ? thumb.blob : null;
  const focusBack = () => document.querySelector(`#review-list .item[data-job-id="${job.id}"] .item-select`);
  editor.open({ job, resultBlob, name: nameOf(job), nav, onSaved: replaceJob, focusBack });
}

// how many the list holds: those to review, or (all) the succeeded ones, which have scores
function total() {
  const counts = state.counts || {};
  const n = state.show === "review" ? counts.review : counts.succeeded;
  return Number.isInteger(n) ? String(n) : "this list";
}

async function step(index) {
  if (index < 0) {
    state.page -= 1;
    await load();
    return openAt(state.jobs.length - 1);
  }
  if (index >= state.jobs.length) {
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    await load();
    return openAt(0);
  }
  return openAt(index);
}

// /?batch=<id>[&show=all] (a query, for tools that cannot write a #): the same list
function fromQuery() {
  const query = new URLSearchParams(location.search);
  const batch = query.get("batch");
  if (!batch || !/^[A-Za-z0-9_-]+$/.test(batch) || location.hash) return;
  const show = query.get("show") === "all" ? "?show=all" : "";
  history.replaceState(null, "", `/#/batches/${batch}/review${show}`);
}

export function start() {
  fromQuery();
  $("review-filter").addEventListener("change", () => {
    const show = $("review-filter").value === "all" ? "all" : "review";
    history.replaceState(null, "", `#/batches/${state.batchId}/review${show === "all" ? "?show=all" : ""}`);
    sync();
  });
  $("review-refresh").addEventListener("click", () => load());
  $("review-show-all").addEventListener("click", () => {
    $("review-filter").value = "all";
    $("review-filter").dispatchEvent(new Event("change"));
  });
  $("review-prev").addEventListener("click", () => {
    if (state.page === 0) return;
    state.page -= 1;
    load();
  });
  $("review-next").addEventListener("click", () => {
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    load();
  });
  window.addEventListener("hashchange", sync);
  sync();
}
