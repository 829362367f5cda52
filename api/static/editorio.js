// What the editor (editor.js) reads and writes through the API: the job's photo, the
// mask to start from, and Save.
//
// - The photo: the page's own file when the job was made here, else
//   GET /v1/jobs/{id}/input.
// - The starting mask: a corrected version's own (GET /v1/jobs/{id}/mask). Otherwise a
//   job's result is the mask itself when it is a PNG or WebP of the
//   photo's size with nothing placed behind or around the subject (no background,
//   canvas, crop or shadow): its alpha; a mask_only result: its grey. Otherwise (a
//   background colour, a canvas, JPEG, ZIP) the page asks the API for the mask with the
//   job's own model and mask options (a mask_only job on the same photo, deleted after).
// - Save: PUT /v1/jobs/{id}/mask with the PNG (its alpha is the mask), then poll the job
//   until its `correction` has made the new `result.version`, and fetch that result.

import { ApiError, api, sleep, uploadTimeout } from "./http.js";

const POLL_FIRST_MS = 250;
const POLL_MAX_MS = 2000;
const WAIT_MS = 5 * 60 * 1000;
// the options that decide the mask itself (all else only places it)
const MASK_OPTIONS = [
  "model", "fast", "post_process", "refine", "alpha_matting", "alpha_matting_foreground_threshold",
  "alpha_matting_background_threshold", "alpha_matting_erode_size",
];

// a mask is decoded as its numbers: no colour management
const AS_NUMBERS = { colorSpaceConversion: "none", premultiplyAlpha: "none" };

export async function decode(blob, options = undefined) {
  try {
    return await createImageBitmap(blob, options);
  } catch (_) {
    throw new ApiError("This browser cannot open the photo (TIFF and some other formats cannot be edited here).", { kind: "client" });
  }
}

export async function photoOf(job, file) {
  const blob = file || await api(`/v1/jobs/${job.id}/input`, { as: "blob", timeout: uploadTimeout(0) * 4 });
  return { blob, bitmap: await decode(blob) };
}

// one channel of an image as a Uint8ClampedArray (3: alpha, 0: red for a grey mask)
export function channelOf(bitmap, channel) {
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const out = new Uint8ClampedArray(canvas.width * canvas.height);
  for (let i = 0, p = channel; i < out.length; i++, p += 4) out[i] = data[p];
  return out;
}

// whether the job's result holds the mask: "alpha", "grey" or null
export function maskInResult(job) {
  const options = job.options || {};
  if (options.format === "zip" || options.format === "jpeg") return null;
  if (options.mask_only) return options.canvas || options.crop ? null : "grey";
  const placed = options.bg_color || options.bg_upload_key || options.bg_image_url ||
    options.canvas || options.crop || options.shadow;
  return placed ? null : "alpha";
}

async function waitForJob(jobId, done, say) {
  let delay = POLL_FIRST_MS;
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    const job = await api(`/v1/jobs/${jobId}`);
    if (done(job)) return job;
    if (job.status === "failed" || job.status === "canceled") {
      const error = job.error || {};
      throw new ApiError(error.message || `The job ${job.status}.`, { code: error.code || "" });
    }
    if (say) say(job);
    if (performance.now() > deadline) throw new ApiError("The server did not finish in 5 minutes.", { kind: "timeout" });
    await sleep(delay);
    delay = Math.min(POLL_MAX_MS, delay * 1.5);
  }
}

// the mask of the job's cutout, the photo's size
// its stored grey mask for a corrected version (GET /v1/jobs/{id}/mask), null if none
async function correctedMask(job, photo) {
  if (!job.result || !job.result.corrected) return null;
  try {
    const bitmap = await decode(await api(`/v1/jobs/${job.id}/mask`, { as: "blob" }), AS_NUMBERS);
    const fits = bitmap.width === photo.bitmap.width && bitmap.height === photo.bitmap.height;
    return fits ? channelOf(bitmap, 0) : null;
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

// the mask to start from: a corrected version's own mask, else the result's alpha or grey
// when the result is the bare cutout, else the model's mask asked for again
export async function startingMask(job, resultBlob, photo, say) {
  const corrected = await correctedMask(job, photo);
  if (corrected) return corrected;
  const kind = maskInResult(job);
  if (kind && !resultBlob && job.result && job.result.url) {
    resultBlob = await api(job.result.url, { as: "blob", timeout: uploadTimeout(job.result.bytes || 0) });
  }
  if (kind && resultBlob) {
    const bitmap = await decode(resultBlob, AS_NUMBERS);
    if (bitmap.width === photo.bitmap.width && bitmap.height === photo.bitmap.height) {
      return channelOf(bitmap, kind === "alpha" ? 3 : 0);
    }
  }
  say("Reading the cutout's mask…");
  const options = { mask_only: true, format: "png" };
  for (const name of MASK_OPTIONS) {
    if (job.options && job.options[name] !== undefined && job.options[name] !== null) options[name] = job.options[name];
  }
  const form = new FormData();
  form.append("options", JSON.stringify(options));
  form.append("image", photo.blob, "photo");
  const created = await api("/v1/jobs", { method: "POST", body: form, timeout: uploadTimeout(photo.blob.size) });
  try {
    const done = await waitForJob(created.id, (j) => j.status === "succeeded", null);
    const blob = await api(done.result.url, { as: "blob", timeout: uploadTimeout(done.result.bytes || 0) });
    return channelOf(await decode(blob, AS_NUMBERS), 0);
  } finally {
    api(`/v1/jobs/${created.id}`, { method: "DELETE", as: "none" }).catch(() => {});
  }
}

export function versionOf(job) {
  return (job && job.result && Number(job.result.version)) || 1;
}

// Save: the mask to the API, then the new version once the worker has made it. The job
// stays succeeded meanwhile: `correction` {status: pending | succeeded | failed, version}
// says how the re-render goes, and `result` becomes the new version when it succeeded.
export async function saveMask(job, png, say) {
  const key = (crypto.randomUUID && crypto.randomUUID()) || `${Date.now()}-${Math.random()}`;
  say("Sending the mask…");
  // the bytes, not the Blob: a request's bytes are then visible to the browser's tools
  const body = new Uint8Array(await png.arrayBuffer());
  const accepted = await api(`/v1/jobs/${job.id}/mask`, {
    method: "PUT", body, type: "image/png", headers: { "Idempotency-Key": key },
    timeout: uploadTimeout(png.size),
  });
  const target = (accepted && accepted.correction && accepted.correction.version) || versionOf(job) + 1;
  say("Making the new version…");
  const done = await waitForJob(job.id, (j) => {
    const correction = j.correction || {};
    if (correction.version === target && correction.status === "failed") {
      const error = correction.error || {};
      throw new ApiError(error.message || "The corrected mask could not be applied.", { code: error.code || "" });
    }
    return j.status === "succeeded" && versionOf(j) >= target;
  }, null);
  const blob = await api(done.result.url, { as: "blob", timeout: uploadTimeout(done.result.bytes || 0) });
  return { job: done, blob };
}
