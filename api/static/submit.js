// Sending images: a direct upload to storage through a signed URL (once per file; its
// upload_key serves every later run), and the jobs or the batch that use them. app.js
// decides what goes where; `page` is its view of the run: {direct() (direct uploads still
// work), noDirect() (they do not: multipart from now on), current() (this run is still
// the page's), setItem(item, status)}.

import { api, uploadTimeout } from "./http.js";

const PARALLEL_UPLOADS = 3;
const UPLOAD_TYPES = new Set([
  "image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff",
]);

export function imageType(file) {
  return UPLOAD_TYPES.has((file.type || "").toLowerCase());
}

// PUT the file to storage once; false when the browser cannot reach storage
export async function uploadDirect(item) {
  const type = item.file.type.toLowerCase();
  const [slot] = await api("/v1/uploads", {
    method: "POST",
    json: { count: 1, content_type: type, bytes: item.file.size },
  });
  const headers = new Headers();
  // the browser sets Content-Length itself (it may not be set by a script)
  for (const [name, value] of Object.entries(slot.headers || {})) {
    if (name.toLowerCase() !== "content-length") headers.set(name, value);
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), uploadTimeout(item.file.size));
  try {
    const response = await fetch(slot.url, {
      method: slot.method || "PUT", headers, body: item.file, signal: controller.signal,
      credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
    });
    await response.arrayBuffer(); // storage's (empty) answer, read to the end
    if (!response.ok) return false;
  } catch (_) {
    return false; // unreachable host, CORS or the CSP: the API will take the bytes instead
  } finally {
    clearTimeout(timer);
  }
  item.uploadKey = slot.upload_key;
  return true;
}

export async function ensureUploads(items, page) {
  const queue = items.filter((item) => !item.uploadKey && imageType(item.file));
  const worker = async () => {
    while (queue.length && page.direct() && page.current()) {
      const item = queue.shift();
      page.setItem(item, "uploading");
      if (!(await uploadDirect(item))) {
        page.noDirect();
        console.info("cutout: direct upload to storage failed; sending images through the API");
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));
}

// submitting

function multipartBody(field, files, options) {
  const form = new FormData();
  form.append("options", JSON.stringify(options));
  for (const file of files) form.append(field, file, file.name || "image");
  return form;
}

export async function submitJob(item, options, page) {
  if (item.uploadKey) {
    try {
      return await api("/v1/jobs", { method: "POST", json: { upload_key: item.uploadKey, options } });
    } catch (error) {
      if (error.code !== "upload_not_found" && !(error.status === 404 && error.code === "not_found")) throw error;
      item.uploadKey = null; // expired: upload again below
      if (page.direct() && imageType(item.file) && (await uploadDirect(item))) {
        return api("/v1/jobs", { method: "POST", json: { upload_key: item.uploadKey, options } });
      }
    }
  }
  return api("/v1/jobs", {
    method: "POST",
    body: multipartBody("image", [item.file], options),
    timeout: uploadTimeout(item.file.size),
  });
}

export async function submitBatch(items, options) {
  let batch;
  if (items.every((item) => item.uploadKey)) {
    batch = await api("/v1/batches", {
      method: "POST",
      json: {
        items: items.map((item) => ({ upload_key: item.uploadKey, metadata: { name: item.name } })),
        options,
      },
    });
  } else {
    const bytes = items.reduce((sum, item) => sum + item.file.size, 0);
    batch = await api("/v1/batches", {
      method: "POST",
      body: multipartBody("images", items.map((item) => item.file), options),
      timeout: uploadTimeout(bytes),
    });
  }
  // the batch's jobs, in item order
  const jobs = [];
  let cursor = "";
  do {
    const listed = await api(`/v1/batches/${batch.id}/jobs?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    jobs.push(...listed.items);
    cursor = listed.next_cursor || "";
  } while (cursor);
  jobs.forEach((job, index) => {
    const item = items[Number.isInteger(job.item_index) ? job.item_index : index];
    if (item) item.job = job;
  });
  return batch;
}
