// The quality score on the page (issue 26): beside each result its score, whether it needs
// a look and what looks wrong, in words; for several images how many need a look, with the
// list ordered worst first or narrowed to those on request.
//
// A job's `result.quality` is {score, flags, review, level} (docs/quality.md): `score` is
// 0-1, an estimate of the cutout's IoU; `review` is true when it is below the server's
// review threshold (CUTOUT_REVIEW_BELOW, decided when the job finished). A succeeded job
// may have no score (scoring never fails a job): the page says so.

// flag code -> what it says: worker/engine/quality.py FLAGS, word for word (a unit test,
// tests/unit/test_web_page.py, keeps the two equal; keep this block valid JSON)
export const FLAGS = {
  "no_subject": "the model found nothing to cut out",
  "tiny_subject": "the subject covers a very small part of the photo",
  "several_pieces": "the cutout is in several separate pieces",
  "touches_frame": "the cutout runs into the photo's edges",
  "uncertain_edges": "the model is unsure over a wide band around the subject",
  "low_contrast": "subject and background have nearly the same colour at the edge",
  "models_disagree": "a second model's cutout differs (full only)"
};

const LEVELS = { basic: "basic score", full: "full score (two models)" };

// how the list of several images is shown: "chosen" order or "worst" first; all or only
// those that need a look
const view = { order: "chosen", reviewOnly: false };
let reviewBelow = null; // the server's threshold, from GET /v1/info, for the words only

const $ = (id) => document.getElementById(id);

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// "the model found nothing to cut out" -> "The model found nothing to cut out."
export function flagText(code) {
  const words = FLAGS[code] || code.replaceAll("_", " ");
  return `${words.charAt(0).toUpperCase()}${words.slice(1)}.`;
}

// the job's quality when the item's result is shown, else null
export function qualityOf(item) {
  if (!item || item.status !== "succeeded" || !item.job || !item.job.result) return null;
  const q = item.job.result.quality;
  return q && typeof q.score === "number" ? q : null;
}

// two decimals, rounded down: rounding up would show a score that needs a look as the
// threshold itself (0.8461 as "0.85" beside "below 0.85"); the API has four decimals
export function scoreText(q) {
  return (Math.floor(Math.round(q.score * 10000) / 100) / 100).toFixed(2);
}

function verdict(q) {
  return q.review ? "Needs a look" : "Looks right";
}

// the server's facts: the review threshold goes into the option's hint
export function useInfo(info) {
  const value = info && Number(info.review_below);
  reviewBelow = Number.isFinite(value) && value > 0 ? value : null;
  const hint = $("score-threshold");
  if (hint) {
    hint.textContent = reviewBelow === null
      ? "A result whose score is below the server's review threshold is marked “Needs a look”."
      : `A result scoring below ${Number(reviewBelow.toFixed(4))} is marked “Needs a look”.`;
  }
}

// the options form: `score` goes with the job only when it is not the default
export function readScore(options) {
  const select = $("score");
  if (select && select.value === "full") options.score = "full";
}

// ---------------------------------------------------------------------------------------
// one result: under the result image

export function showResult(container, item) {
  if (!container) return;
  const done = item && item.status === "succeeded" && item.job;
  container.hidden = !done;
  if (!done) {
    container.replaceChildren();
    delete container.dataset.review;
    return;
  }
  const q = qualityOf(item);
  const key = q ? JSON.stringify([item.job.id, q]) : `none:${item.job.id}`;
  if (container.dataset.key === key) return; // unchanged: keep the DOM (and screen readers) still
  container.dataset.key = key;
  if (!q) {
    container.dataset.review = "unknown";
    container.replaceChildren(make("p", "quality-none", "No quality score for this result."));
    return;
  }
  container.dataset.review = String(Boolean(q.review));
  const head = make("div", "quality-head");
  const badge = make("span", `quality-badge ${q.review ? "is-review" : "is-ok"}`);
  badge.append(make("span", "quality-icon", q.review ? "!" : "✓"), make("span", "", verdict(q)));
  badge.firstChild.setAttribute("aria-hidden", "true");
  const score = make("span", "quality-score");
  score.append("Score ", make("strong", "", scoreText(q)));
  score.append(make("span", "quality-level", ` · estimated IoU · ${LEVELS[q.level] || q.level || ""}`));
  score.title = "An estimate of how much the cutout overlaps a perfect one (IoU, 0 to 1): higher is more likely right.";
  head.append(badge, score);
  const bar = make("div", "quality-bar");
  bar.setAttribute("aria-hidden", "true");
  const fill = make("span", q.review ? "is-review" : "is-ok");
  fill.style.width = `${Math.round(Math.max(0, Math.min(1, q.score)) * 100)}%`;
  bar.append(fill);
  container.replaceChildren(head, bar);
  const flags = Array.isArray(q.flags) ? q.flags : [];
  if (flags.length) {
    container.append(make("p", "quality-flags-title", q.review ? "Why it may be wrong:" : "Worth a glance:"));
    const list = make("ul", "quality-flags");
    for (const code of flags) {
      const entry = make("li", "", flagText(code));
      entry.dataset.flag = code;
      list.append(entry);
    }
    container.append(list);
  }
}

// ---------------------------------------------------------------------------------------
// several images: each item's mark, how many need a look, the list's order and filter

export function itemLabel(item) {
  const q = qualityOf(item);
  return q ? `${verdict(q)}, score ${scoreText(q)}` : "";
}

export function markItem(node, item) {
  const q = qualityOf(item);
  const review = Boolean(q && q.review);
  node.dataset.review = String(review);
  node.classList.toggle("is-review", review);
  let mark = node.querySelector(".item-quality");
  if (!mark) {
    mark = make("span", "item-quality");
    node.querySelector(".item-text").append(mark);
  }
  mark.hidden = !q;
  if (!q) return;
  const text = `${review ? "! Needs a look" : "✓ Looks right"} · ${scoreText(q)}`;
  if (mark.textContent !== text) mark.textContent = text;
  mark.classList.toggle("is-review", review);
  mark.title = (q.flags || []).map(flagText).join(" ");
}

export function reviewCount(items) {
  return items.filter((item) => { const q = qualityOf(item); return q && q.review; }).length;
}

// "· 2 need a look" for the status line ("3 of 3 done · 2 need a look"), or ""
export function reviewSummary(items) {
  const n = reviewCount(items);
  if (!n) return "";
  return ` · ${n} ${n === 1 ? "needs" : "need"} a look`;
}

// the items as the list shows them: worst first (failed, then by score, then the rest in
// the order chosen) and/or only those that need a look
export function arrange(items) {
  let shown = items;
  if (view.reviewOnly && reviewCount(items)) shown = shown.filter((item) => { const q = qualityOf(item); return q && q.review; });
  if (view.order !== "worst") return shown;
  const rank = (item) => {
    if (item.status === "failed") return -1;
    const q = qualityOf(item);
    return q ? q.score : 2;
  };
  return shown
    .map((item, index) => ({ item, index, rank: rank(item) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map((entry) => entry.item);
}

// the bar over the list: "2 of 5 need a look", the order and the filter
export function renderBar(items) {
  const bar = $("review-bar");
  if (!bar) return;
  bar.hidden = items.length < 2;
  if (bar.hidden) return;
  const scored = items.filter((item) => qualityOf(item)).length;
  const n = reviewCount(items);
  const summary = $("review-summary");
  let text;
  if (!scored) text = "Quality scores appear as results arrive.";
  else if (!n) text = `None of ${scored} scored ${scored === 1 ? "result needs" : "results need"} a look.`;
  else text = `${n} of ${items.length} ${n === 1 ? "needs" : "need"} a look.`;
  if (summary.textContent !== text) summary.textContent = text;
  summary.classList.toggle("is-review", n > 0);
  const only = $("review-only");
  only.disabled = !n;
  if (!n) only.checked = false;
  view.reviewOnly = only.checked;
  $("review-only-label").textContent = `Needs a look only (${n})`;
}

export function bindView(onChange) {
  const order = $("list-order");
  const only = $("review-only");
  if (!order || !only) return;
  order.addEventListener("change", () => {
    view.order = order.value === "worst" ? "worst" : "chosen";
    onChange();
  });
  only.addEventListener("change", () => {
    view.reviewOnly = only.checked;
    onChange();
  });
}
