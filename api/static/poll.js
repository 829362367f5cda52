// Waiting for jobs: one loop polls every unfinished job of a run (the batch's job list,
// or each single job) with backoff, fetches each result as a blob once its job has
// succeeded (so the API key is sent), and keeps retrying a lost connection for a while.
// `page` is app.js's view of the run: {current() (this run is still the page's),
// setItem(item, status, message), offline(message), online()}.

import { ApiError, api, sleep, uploadTimeout } from "./http.js";

const POLL_FIRST_MS = 250;
const POLL_MAX_MS = 2000;
const POLL_GROWTH = 1.5;
const JOB_DEADLINE_MS = 10 * 60 * 1000; // stop waiting for a job after this long
const OFFLINE_GIVE_UP_MS = 90 * 1000; // polling keeps retrying a lost connection this long
const EXTENSIONS = { png: "png", webp: "webp", jpeg: "jpg", zip: "zip" };
export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

function jobFailure(job) {
  const error = job.error || {};
  if (job.status === "canceled") return "The job was canceled.";
  return error.message || `The job failed (${error.code || "unknown error"}).`;
}

async function receive(item, job, page) {
  item.job = job;
  if (job.status === "succeeded") {
    page.setItem(item, "fetching");
    const blob = await api(job.result.url, { as: "blob", timeout: uploadTimeout(job.result.bytes || 0) });
    if (!page.current()) return;
    if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
    item.resultUrl = URL.createObjectURL(blob);
    item.resultBlob = blob; // the editor reads the mask from it
    const format = (job.options && job.options.format) || "png";
    item.resultName = `${item.stem}-cutout.${EXTENSIONS[format] || "png"}`;
    item.seconds = (performance.now() - item.startedAt) / 1000;
    page.setItem(item, "succeeded");
  } else if (TERMINAL.has(job.status)) {
    page.setItem(item, "failed", jobFailure(job));
  } else if (job.status !== item.status) {
    page.setItem(item, job.status);
  }
}

// one loop polls every unfinished job: the batch's job list, or each single job
export async function pollUntilDone(items, batchId, page) {
  let delay = POLL_FIRST_MS;
  const deadline = performance.now() + JOB_DEADLINE_MS;
  let lostSince = 0;
  // by the page's own status: a job the batch listing already showed finished still
  // needs its result fetched
  const finished = (item) => item.status === "succeeded" || item.status === "failed";
  const pending = () => items.filter((item) => item.job && !finished(item));
  while (page.current() && pending().length) {
    await sleep(delay);
    if (!page.current()) return;
    try {
      if (batchId) {
        let cursor = "";
        do {
          const listed = await api(`/v1/batches/${batchId}/jobs?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
          for (const job of listed.items) {
            const item = items.find((candidate) => candidate.job && candidate.job.id === job.id);
            if (item && !finished(item)) await receive(item, job, page);
          }
          cursor = listed.next_cursor || "";
        } while (cursor && page.current());
      } else {
        for (const item of pending()) {
          const job = await api(`/v1/jobs/${item.job.id}`);
          if (!page.current()) return;
          await receive(item, job, page);
        }
      }
      lostSince = 0;
      page.online();
    } catch (error) {
      if (!error.transient) throw error;
      lostSince = lostSince || performance.now();
      page.offline(error.message);
      if (performance.now() - lostSince > OFFLINE_GIVE_UP_MS) {
        throw new ApiError(`${error.message} Stopped waiting after ${OFFLINE_GIVE_UP_MS / 1000} seconds; use "Process again" to retry.`, { kind: error.kind });
      }
    }
    if (performance.now() > deadline) {
      for (const item of pending()) {
        page.setItem(item, "failed", `Timed out: the job was still ${item.job.status} after ${JOB_DEADLINE_MS / 60000} minutes.`);
      }
      return;
    }
    delay = Math.min(POLL_MAX_MS, delay * POLL_GROWTH);
  }
}
