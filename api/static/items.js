// The page's items, one per chosen file: what is kept of each, and how its state is said.

let nextItemId = 1;

export function makeItem(file) {
  const dot = file.name.lastIndexOf(".");
  const stem = (dot > 0 ? file.name.slice(0, dot) : file.name) || "image";
  return {
    id: nextItemId++,
    file,
    name: file.name || "image",
    stem,
    originalUrl: URL.createObjectURL(file),
    uploadKey: null,
    job: null,
    status: "waiting", // waiting | uploading | queued | processing | succeeded | failed
    message: "",
    resultUrl: null,
    resultName: "",
    startedAt: 0,
    seconds: 0,
    node: null,
  };
}

export function releaseItem(item) {
  URL.revokeObjectURL(item.originalUrl);
  if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
}

// `model`: the model named while the item has no job yet (the options form's)
export function describe(item, model) {
  const named = item.job && item.job.options ? item.job.options.model : model;
  switch (item.status) {
    case "waiting": return "Waiting…";
    case "uploading": return "Uploading…";
    case "queued": return "Queued…";
    case "processing": return `Removing the background (${named})…`;
    case "fetching": return "Fetching the result…";
    case "succeeded": return item.seconds ? `Done in ${item.seconds.toFixed(1)} s` : "Done";
    case "failed": return item.message || "Failed";
    default: return item.status;
  }
}

export function formatBytes(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${bytes} B`;
}
