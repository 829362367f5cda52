// One run's live items to the API and back: uploads (submit.js), one batch for the
// images (or single jobs where the server has no batches, or for files the browser does
// not know as images: the API judges those one by one), then polling (poll.js) until
// every job has finished. `page` is app.js's view of the run (poll.js says what it
// holds), plus {direct(), noDirect()} for uploads and {batches(), noBatches(),
// batchStarted(id)} for the batch.

import { ensureUploads, imageType, submitBatch, submitJob } from "./submit.js";
import { TERMINAL, pollUntilDone } from "./poll.js";

// the batch's items; what it could not take goes to `singles`. Returns the batch id.
async function sendBatch(grouped, singles, options, page) {
  while (grouped.length > 1) {
    grouped.forEach((item) => page.setItem(item, "uploading"));
    try {
      const batch = await submitBatch(grouped, options);
      page.batchStarted(batch.id);
      // a job already finished is "queued" here: its result comes with the first poll
      grouped.forEach((item) => page.setItem(item, item.job && !TERMINAL.has(item.job.status) ? item.job.status : "queued"));
      return batch.id;
    } catch (error) {
      if (error.status === 404 || error.status === 405) {
        page.noBatches(); // an older server: single jobs
        singles.push(...grouped.splice(0));
      } else if (error.item !== null && grouped[error.item]) {
        // one bad item refuses the batch: mark it and send the others
        const [bad] = grouped.splice(error.item, 1);
        page.setItem(bad, "failed", error.message.replace(/^items\[\d+\]: /, ""));
      } else {
        throw error;
      }
    }
  }
  singles.push(...grouped.splice(0));
  return null;
}

export async function sendAndFollow(live, options, page) {
  if (page.direct()) await ensureUploads(live, page);
  if (!page.current()) return;
  const singles = live.filter((item) => !imageType(item.file));
  const grouped = live.filter((item) => imageType(item.file));
  if (grouped.length < 2 || !page.batches()) singles.push(...grouped.splice(0));
  const batchId = await sendBatch(grouped, singles, options, page);
  for (const item of singles) {
    if (!page.current()) return;
    page.setItem(item, "uploading");
    try {
      const job = await submitJob(item, options, page);
      item.job = job;
      page.setItem(item, job.status);
    } catch (error) {
      if (error.transient || error.status === 401) throw error;
      page.setItem(item, "failed", error.message);
    }
  }
  if (!page.current()) return;
  await Promise.all([
    batchId ? pollUntilDone(live.filter((item) => item.job && item.job.batch_id === batchId), batchId, page) : null,
    pollUntilDone(live.filter((item) => item.job && (!batchId || item.job.batch_id !== batchId)), null, page),
  ]);
}
