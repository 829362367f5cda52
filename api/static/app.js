// Cutout web page: plain JavaScript on the public API, no build step, no other hosts.
//
// How an image travels from here:
//  1. POST /v1/uploads gives a signed URL; the file is PUT straight to storage ONCE and
//     its upload_key kept, so "Process again" creates new jobs on the same key without
//     uploading again. When storage cannot be reached from the browser (another host,
//     CORS, the CSP), the page falls back to multipart for the rest of the session and
//     keeps the File in memory to send it again.
//     Files the browser does not know as images go multipart at once: the API judges
//     the bytes and answers with a problem detail the page shows.
//  2. One file: POST /v1/jobs. Several: POST /v1/batches (items with upload_key, or
//     multipart `images`), or single jobs when the server has no batches.
//  3. Polls with backoff (250 ms growing to 2 s), then fetches the result as a blob
//     (so that the API key header is sent) for the preview and the download link.
//  4. Shows each result's quality score and flags (quality.js, an ES module: this file is
//     one too, and api/web.py versions the import with quality.js's content hash).
//  5. "Edit the cutout" opens the editor (editor.js) on the selected result; a batch's
//     review list has its own address, /#/batches/<id>/review (review.js). Requests go
//     through http.js, which this file configures with the key and what a 401 does; the
//     options form is options.js, the uploads and submissions of steps 1-2 submit.js,
//     the polling of step 3 poll.js, one run's sending and following send.js, the items
//     items.js, the alert notice.js, the subject's box subject.js.
import * as quality from "./quality.js";
import { api, configure as configureHttp } from "./http.js";
import * as review from "./review.js";
import * as editor from "./editor.js";
import { applyModels, loadModels, readOptions, syncOptionControls } from "./options.js";
import { uploadDirect } from "./submit.js";
import { sendAndFollow } from "./send.js";
import * as notice from "./notice.js";
import { drawSubject } from "./subject.js";
import { describe as describeItem, formatBytes, makeItem, releaseItem } from "./items.js";

(() => {
  const KEY_STORAGE = "cutout.apiKey";
  const FORMAT_LABELS = { png: "PNG", webp: "WebP", jpeg: "JPEG", zip: "ZIP" };

  const $ = (id) => document.getElementById(id);
  const el = {
    keyForm: $("key-form"), keyInput: $("api-key"), keyForget: $("key-forget"), keyHelp: $("key-help"),
    dropzone: $("dropzone"), fileInput: $("file-input"),
    status: $("status"), alert: $("alert"),
    compare: $("compare"),
    originalImg: $("original-img"), originalNone: $("original-none"), originalMeta: $("original-meta"),
    resultStage: $("result-stage"), resultImg: $("result-img"), resultMeta: $("result-meta"),
    resultProgress: $("result-progress"), resultProgressText: $("result-progress-text"),
    resultError: $("result-error"),
    actions: $("actions"), download: $("download"), edit: $("edit"), downloadAll: $("download-all"), clear: $("clear"),
    items: $("items"), itemTemplate: $("item-template"),
    options: $("options"), apply: $("apply"),
    // the options form's controls are options.js's; these few are read here too
    model: $("model"), format: $("format"), bgColor: $("bg-color"), bgColorValue: $("bg-color-value"),
    fast: $("fast"),
    subjectBox: $("subject-box"), resultNote: $("result-note"), bgImage: $("bg-image"),
    resultQuality: $("result-quality"),
  };

  const state = {
    info: null,
    key: sessionStorage.getItem(KEY_STORAGE) || "",
    direct: true, // direct upload to storage works, until a PUT fails
    batches: true, // the server has POST /v1/batches, until it answers 404/405
    items: [],
    selected: null,
    run: 0, // each processing run has a number; an older run's loops stop when it changes
    busy: false,
    batchId: null,
    zipping: false, // the batch's results.zip is being downloaded
    offline: false,
  };

  // ---------------------------------------------------------------------------------
  // API key (only when the server asks for one)

  function showKeyForm(message) {
    el.keyForm.hidden = false;
    el.keyInput.value = state.key;
    el.keyForget.hidden = !state.key;
    el.keyHelp.textContent = message ||
      "This server needs an API key. It is kept in this browser tab only (session storage).";
  }

  function askForKey(message) {
    showKeyForm(state.key
      ? `The API key was not accepted: ${message}`
      : "This server needs an API key. It is kept in this browser tab only (session storage).");
    if (!state.key) el.keyInput.focus();
  }

  async function useKey(key) {
    state.key = key.trim();
    if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
    else sessionStorage.removeItem(KEY_STORAGE);
    if (await loadInfo()) review.ready();
  }

  // ---------------------------------------------------------------------------------
  // server facts: GET /v1/info (401 means keys are on and ours is missing or wrong)

  async function loadInfo() {
    try {
      state.info = await api("/v1/info");
    } catch (error) {
      if (error.status === 401) return false;
      if (error.status === 404) {
        state.info = { auth: false, models: ["u2net", "u2netp"], max_upload_bytes: 0 };
      } else {
        showAlert("The server is not answering", error.message);
        return false;
      }
    }
    if (state.info.auth) {
      showKeyForm("Key accepted. It is kept in this browser tab only (session storage).");
    } else {
      el.keyForm.hidden = true;
    }
    applyModels(await loadModels(state.info.models));
    quality.useInfo(state.info);
    // fast: false means no worker serves fast mode; such a job would be refused
    const fastBox = el.fast.closest("label");
    fastBox.hidden = state.info.fast === false;
    if (fastBox.hidden) el.fast.checked = false;
    if (state.info.max_upload_bytes) {
      $("dropzone-hint").textContent =
        `JPEG, PNG, WebP, GIF, BMP or TIFF up to ${formatBytes(state.info.max_upload_bytes)} · one or many · you can also paste`;
    }
    hideAlert();
    return true;
  }

  // ---------------------------------------------------------------------------------
  // items: one per chosen file

  function setItem(item, status, message = "") {
    item.status = status;
    item.message = message;
    render();
  }

  // ---------------------------------------------------------------------------------
  // waiting and fetching results

  const describe = (item) => describeItem(item, el.model.value);

  // ---------------------------------------------------------------------------------
  // one processing run over the current items

  async function processItems(items) {
    let options;
    try {
      options = readOptions();
    } catch (error) {
      showAlert("Check the options", error.message);
      return;
    }
    const bgFile = el.bgImage.files && el.bgImage.files[0];
    if (bgFile) {
      // the background goes to storage like an image; the job names it by its key
      const bg = { file: bgFile };
      try {
        if (!(await uploadDirect(bg))) throw new Error("direct upload to storage failed");
      } catch (error) {
        showAlert("The background image could not be uploaded", error.message);
        return;
      }
      delete options.bg_color;
      options.bg_upload_key = bg.uploadKey;
    }
    const run = ++state.run;
    state.busy = true;
    state.batchId = null;
    hideAlert();
    const started = performance.now();
    const limit = state.info && state.info.max_upload_bytes;
    const live = [];
    for (const item of items) {
      item.job = null;
      item.seconds = 0;
      item.startedAt = started;
      if (limit && item.file.size > limit) {
        setItem(item, "failed", `${item.name} is ${formatBytes(item.file.size)}, over this server's limit of ${formatBytes(limit)}.`);
      } else if (item.file.size === 0) {
        // the API would say "the input is empty (0 bytes)": said here, before any request
        setItem(item, "failed", `${item.name} is empty (0 bytes): not an image.`);
      } else {
        setItem(item, "waiting");
        live.push(item);
      }
    }
    try {
      // what the uploads and submissions see of this run
      const page = {
        direct: () => state.direct,
        noDirect: () => { state.direct = false; },
        current: () => run === state.run,
        setItem,
        offline: (message) => setOffline(true, message),
        online: () => { if (state.offline) setOffline(false); },
        batches: () => state.batches,
        noBatches: () => { state.batches = false; },
        batchStarted: (id) => { state.batchId = id; },
      };
      await sendAndFollow(live, options, page);
    } catch (error) {
      if (run !== state.run) return;
      for (const item of live) {
        if (item.status !== "succeeded" && item.status !== "failed") setItem(item, "failed", error.message);
      }
      if (error.status === 401) return; // the key form says it
      showAlert(error.kind === "network" ? "Connection lost" : error.kind === "timeout" ? "Timed out" : "Something went wrong", error.message);
    } finally {
      if (run === state.run) {
        state.busy = false;
        render();
        announceSummary();
      }
    }
  }

  // ---------------------------------------------------------------------------------
  // rendering

  function setStatus(text, ok = false, error = false) {
    el.status.textContent = text;
    el.status.classList.toggle("is-ok", ok);
    el.status.classList.toggle("is-error", error);
  }

  const showAlert = (title, detail) => notice.showAlert(el.alert, title, detail);
  const hideAlert = () => notice.hideAlert(el.alert);

  function setOffline(offline, message = "") {
    if (state.offline === offline) return;
    state.offline = offline;
    if (offline) {
      showAlert("Connection lost", `${message || "The server cannot be reached."} Retrying…`);
    } else {
      hideAlert();
    }
  }

  function announceSummary() {
    const items = state.items;
    if (!items.length) { setStatus(""); return; }
    if (items.length === 1) {
      const item = items[0];
      if (item.status === "failed") setStatus(`${item.name} was not processed: ${item.message}`, false, true);
      else {
        const verdict = quality.itemLabel(item);
        setStatus(`${describe(item)}${verdict ? ` · ${verdict}` : ""}`, item.status === "succeeded");
      }
      return;
    }
    const done = items.filter((item) => item.status === "succeeded").length;
    const failed = items.filter((item) => item.status === "failed").length;
    const working = items.length - done - failed;
    let text = `${done} of ${items.length} done${quality.reviewSummary(items)}`;
    if (failed) text += ` · ${failed} failed`;
    if (working) text += ` · ${working} in progress…`;
    setStatus(text, !working && !failed, !working && failed > 0);
  }

  let lastAnnounced = "";

  const drawSubjectBox = (result) => drawSubject(el.subjectBox, el.originalImg, result);

  function render() {
    const items = state.items;
    const has = items.length > 0;
    el.compare.hidden = !has;
    el.actions.hidden = !has;
    el.dropzone.classList.toggle("is-compact", has);
    el.apply.disabled = !has;
    el.apply.textContent = "Process again";

    const item = state.selected;
    if (item) {
      el.compare.dataset.item = String(item.id);
      if (el.originalImg.dataset.src !== item.originalUrl) {
        el.originalImg.dataset.src = item.originalUrl;
        el.originalImg.hidden = false;
        el.originalNone.hidden = true;
        el.originalMeta.textContent = item.name;
        el.originalImg.src = item.originalUrl;
      }
      const done = item.status === "succeeded" && item.resultUrl;
      const failed = item.status === "failed";
      const working = !done && !failed;
      el.resultStage.setAttribute("aria-busy", String(working));
      el.resultStage.dataset.jobId = item.job ? item.job.id : "";
      el.resultStage.dataset.status = item.status;
      el.resultProgress.hidden = !working;
      el.resultProgressText.textContent = describe(item);
      el.resultError.hidden = !failed;
      el.resultStage.classList.toggle("is-failed", failed);
      el.resultError.textContent = failed ? item.message : "";
      if (done) {
        if (el.resultImg.dataset.src !== item.resultUrl) {
          el.resultImg.dataset.src = item.resultUrl;
          el.resultImg.dataset.owner = String(item.id);
          el.resultImg.src = item.resultUrl;
        }
        const zip = item.job.options.format === "zip";
        el.resultImg.hidden = zip; // a ZIP is not an image: it is downloaded
        el.resultNote.hidden = !zip;
        const r = item.job.result || {};
        const parts = [];
        if (r.width && r.height) parts.push(`${r.width}×${r.height}`);
        if (r.bytes) parts.push(formatBytes(r.bytes));
        parts.push(item.job.options.model);
        el.resultMeta.textContent = parts.join(" · ");
        el.download.href = item.resultUrl;
        el.download.download = item.resultName;
        el.download.removeAttribute("aria-disabled");
        el.download.removeAttribute("tabindex");
        el.download.textContent = `Download ${FORMAT_LABELS[item.job.options.format] || ""}`.trim();
        el.edit.hidden = false;
      } else {
        el.resultNote.hidden = true;
        // keep a previous result visible (dimmed by the progress layer) while working
        el.resultImg.hidden = failed || el.resultImg.dataset.owner !== String(item.id);
        if (failed) el.resultMeta.textContent = "";
        el.download.removeAttribute("href");
        el.download.setAttribute("aria-disabled", "true");
        el.download.setAttribute("tabindex", "-1");
        el.download.textContent = "Download";
        el.edit.hidden = true;
      }
    } else {
      el.originalImg.removeAttribute("src");
      delete el.originalImg.dataset.src;
      el.resultImg.removeAttribute("src");
      delete el.resultImg.dataset.src;
      delete el.resultImg.dataset.owner;
      el.resultImg.hidden = true;
    }

    drawSubjectBox(item && item.status === "succeeded" && item.job ? item.job.result : null);
    quality.showResult(el.resultQuality, item);
    renderDownloadAll(items);
    renderList();

    if (state.busy) {
      // announce progress, not every internal step
      const text = items.length === 1 ? describe(items[0]) : null;
      if (text && text !== lastAnnounced) {
        lastAnnounced = text;
        setStatus(text);
      } else if (!text) {
        announceSummary();
      }
    }
  }

  // "Download all (.zip)": the batch's results.zip holds the finished results only, so the
  // button waits until every image has finished, saying how many are ready meanwhile, and
  // names a partial zip (some failed) as such
  function renderDownloadAll(items) {
    const button = el.downloadAll;
    const batch = items.filter((i) => state.batchId && i.job && i.job.batch_id === state.batchId);
    button.hidden = !(batch.length && items.length > 1);
    if (button.hidden) return;
    const ready = batch.filter((i) => i.status === "succeeded").length;
    const finished = items.every((i) => i.status === "succeeded" || i.status === "failed");
    const counts = `${ready} of ${items.length}`;
    button.disabled = state.zipping || !finished || !ready;
    if (!finished) {
      button.textContent = `Download all (.zip) · ${counts} ready`;
      button.title = "Enabled once every image has finished";
    } else {
      button.textContent = ready === items.length ? "Download all (.zip)" : `Download ${counts} (.zip)`;
      button.title = ready === items.length ? "" : `${items.length - ready} not processed: the zip holds the other ${ready}`;
    }
  }

  function renderList() {
    const items = state.items;
    el.items.hidden = items.length < 2;
    quality.renderBar(items);
    if (items.length < 2) {
      el.items.replaceChildren();
      return;
    }
    for (const item of items) {
      if (!item.node) {
        const node = el.itemTemplate.content.firstElementChild.cloneNode(true);
        node.querySelector(".item-name").textContent = item.name;
        node.querySelector(".item-select").addEventListener("click", () => select(item));
        item.node = node;
      }
      const node = item.node;
      node.dataset.status = item.status;
      node.classList.toggle("is-selected", item === state.selected);
      const button = node.querySelector(".item-select");
      button.setAttribute("aria-pressed", String(item === state.selected));
      const verdict = quality.itemLabel(item);
      button.setAttribute("aria-label", `${item.name}: ${describe(item)}${verdict ? `, ${verdict}` : ""}`);
      const img = node.querySelector("img");
      const src = item.resultUrl && item.status === "succeeded" ? item.resultUrl : item.originalUrl;
      if (img.getAttribute("src") !== src) img.src = src;
      const stateText = node.querySelector(".item-state");
      stateText.textContent = describe(item);
      stateText.classList.toggle("is-failed", item.status === "failed");
      stateText.classList.toggle("is-done", item.status === "succeeded");
      const link = node.querySelector(".item-download");
      link.hidden = item.status !== "succeeded";
      if (item.status === "succeeded") {
        link.href = item.resultUrl;
        link.download = item.resultName;
        link.setAttribute("aria-label", `Download ${item.resultName}`);
      }
      quality.markItem(node, item);
    }
    // the order and filter chosen over the list (worst first, needs a look only)
    const shown = quality.arrange(items).map((item) => item.node);
    const current = Array.from(el.items.children);
    if (current.length !== shown.length || shown.some((node, i) => node !== current[i])) {
      el.items.replaceChildren(...shown);
    }
  }

  // the editor on the selected result; Save makes a new version, shown here too
  function editSelected() {
    const item = state.selected;
    if (!item || item.status !== "succeeded" || !item.job) return;
    editor.open({
      job: item.job, file: item.file, resultBlob: item.resultBlob || null, name: item.name,
      onSaved: (job, blob) => {
        item.job = job;
        if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
        item.resultUrl = URL.createObjectURL(blob);
        item.resultBlob = blob;
        render();
      },
    });
  }

  function select(item) {
    state.selected = item;
    render();
  }

  // ---------------------------------------------------------------------------------
  // choosing files

  function chooseFiles(fileList) {
    const files = Array.from(fileList || []).filter((file) => file && file.size !== undefined);
    if (!files.length) return;
    state.run++; // stop following the previous images
    for (const item of state.items) releaseItem(item);
    el.resultImg.removeAttribute("src");
    delete el.resultImg.dataset.src;
    delete el.resultImg.dataset.owner;
    state.items = files.map(makeItem);
    state.selected = state.items[0];
    state.batchId = null;
    lastAnnounced = "";
    render();
    processItems(state.items);
  }

  function startOver() {
    state.run++;
    state.busy = false;
    for (const item of state.items) releaseItem(item);
    state.items = [];
    state.selected = null;
    state.batchId = null;
    hideAlert();
    setStatus("");
    render();
    el.fileInput.value = "";
    el.fileInput.focus();
  }

  async function downloadAll() {
    if (!state.batchId) return;
    state.zipping = true;
    render();
    try {
      const blob = await api(`/v1/batches/${state.batchId}/results.zip`, { as: "blob", timeout: 5 * 60 * 1000 });
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = "cutouts.zip";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      showAlert("Download failed", error.message);
    } finally {
      state.zipping = false;
      render();
    }
  }

  // ---------------------------------------------------------------------------------
  // events

  function bind() {
    el.fileInput.addEventListener("change", () => chooseFiles(el.fileInput.files));

    let depth = 0;
    const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
    document.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth++;
      el.dropzone.classList.add("is-dragging");
    });
    document.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) el.dropzone.classList.remove("is-dragging");
    });
    // dropping anywhere on the page takes the files (instead of the browser opening them)
    document.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    document.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      el.dropzone.classList.remove("is-dragging");
      chooseFiles(event.dataTransfer.files);
    });
    document.addEventListener("paste", (event) => {
      const files = event.clipboardData && event.clipboardData.files;
      if (files && files.length) {
        event.preventDefault();
        chooseFiles(files);
      }
    });

    el.originalImg.addEventListener("load", () => {
      const item = state.selected;
      if (!item) return;
      el.originalMeta.textContent = `${el.originalImg.naturalWidth}×${el.originalImg.naturalHeight} · ${formatBytes(item.file.size)}`;
      // remove.bg's advice, measured here too (docs/api.md): ZIP above 10 megapixels
      const pixels = el.originalImg.naturalWidth * el.originalImg.naturalHeight;
      $("large-hint").hidden = pixels <= 10_000_000 || el.format.value === "zip";
      render(); // the subject's box needs the image's displayed size
    });
    window.addEventListener("resize", () => render());
    el.originalImg.addEventListener("error", () => {
      if (!el.originalImg.getAttribute("src")) return;
      el.originalImg.hidden = true;
      el.originalNone.hidden = false;
    });

    el.options.addEventListener("change", syncOptionControls);
    el.options.addEventListener("input", (event) => {
      if (event.target === el.bgColor) {
        el.bgColorValue.textContent = el.bgColor.value;
      }
    });
    el.options.addEventListener("submit", (event) => {
      event.preventDefault();
      if (state.items.length) processItems(state.items);
    });
    el.clear.addEventListener("click", startOver);
    el.downloadAll.addEventListener("click", downloadAll);
    el.edit.addEventListener("click", editSelected);
    quality.bindView(() => renderList());

    el.keyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      useKey(el.keyInput.value);
    });
    el.keyForget.addEventListener("click", () => {
      el.keyInput.value = "";
      useKey("");
    });

    window.addEventListener("offline", () => setOffline(true, "Your device is offline."));
    window.addEventListener("online", () => { if (state.offline) setOffline(false); });
  }

  configureHttp({
    key: () => state.key,
    onUnauthorized: askForKey,
    onAnswer: () => setOffline(false),
  });
  bind();
  syncOptionControls();
  render();
  review.start();
  loadInfo().then((ok) => { if (ok) review.ready(); });
})();
