// The mask being edited (editor.js): a canvas the input's size whose alpha is the mask,
// brush strokes on it, undo and redo, and the PNG that Save sends.
//
// A stroke is dabs along the pointer's path: restore paints white (alpha 255 inside a
// hard brush), erase removes (alpha 0 inside); softness fades the brush's outer part.
// The edge brush (snap.js) first collects the stroke's footprint and centre line, shows
// it as a tint, and on release applies only the part that stays on the photo's side of
// an edge. Each stroke keeps the pixels it changed (before and after, in its box) for
// undo and redo.

import { snapRegion } from "./snap.js";

const HISTORY = 60; // strokes kept for undo
const HISTORY_BYTES = 256 * 1024 * 1024; // and at most this much of their pixels

function bytesOf(step) {
  return step.before.data.length + step.after.data.length;
}

function canvas(width, height) {
  const node = document.createElement("canvas");
  node.width = width;
  node.height = height;
  return node;
}

function clampRect(rect, width, height) {
  const x0 = Math.max(0, Math.floor(rect.x0));
  const y0 = Math.max(0, Math.floor(rect.y0));
  const x1 = Math.min(width, Math.ceil(rect.x1));
  const y1 = Math.min(height, Math.ceil(rect.y1));
  return x1 > x0 && y1 > y0 ? { x: x0, y: y0, w: x1 - x0, h: y1 - y0 } : null;
}

export class MaskModel {
  // photo: a canvas or ImageBitmap (the input); alpha: Uint8ClampedArray width*height
  constructor(photo, alpha, onChange) {
    this.width = photo.width;
    this.height = photo.height;
    this.photo = photo;
    this.onChange = onChange; // (rect | null) after each change; null: everything
    this.mask = canvas(this.width, this.height);
    this.ctx = this.mask.getContext("2d", { willReadFrequently: true });
    this.backup = canvas(this.width, this.height); // the mask when the stroke began
    this.backupCtx = this.backup.getContext("2d", { willReadFrequently: true });
    this.tint = canvas(this.width, this.height); // the edge brush's footprint, shown while drawing
    this.tintCtx = this.tint.getContext("2d", { willReadFrequently: true });
    this.photoPixels = null;
    this.undoStack = [];
    this.redoStack = [];
    this.stroke = null;
    this.setAlpha(alpha);
  }

  setAlpha(alpha) {
    const image = this.ctx.createImageData(this.width, this.height);
    const data = image.data;
    for (let i = 0, p = 0; i < alpha.length; i++, p += 4) {
      data[p] = 255; data[p + 1] = 255; data[p + 2] = 255; data[p + 3] = alpha[i];
    }
    this.ctx.putImageData(image, 0, 0);
    this.undoStack = [];
    this.redoStack = [];
    this.onChange(null);
  }

  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }
  get edited() { return this.undoStack.length > 0; }

  // tool: { mode: "erase" | "restore", size (px of the photo), softness 0-1, snap }
  begin(tool, x, y, pressure = 1) {
    this.backupCtx.clearRect(0, 0, this.width, this.height);
    this.backupCtx.drawImage(this.mask, 0, 0);
    this.stroke = { tool, last: null, rect: { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity }, seeds: [] };
    this.move(x, y, pressure);
  }

  move(x, y, pressure = 1) {
    const stroke = this.stroke;
    if (!stroke) return;
    const radius = Math.max(0.5, (stroke.tool.size / 2) * pressure);
    const from = stroke.last || { x, y };
    const distance = Math.hypot(x - from.x, y - from.y);
    const step = Math.max(0.5, radius / 4);
    const steps = Math.max(1, Math.ceil(distance / step));
    const box = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
    for (let i = stroke.last ? 1 : 0; i <= steps; i++) {
      const px = from.x + ((x - from.x) * i) / steps;
      const py = from.y + ((y - from.y) * i) / steps;
      this.dab(stroke.tool, px, py, radius);
      box.x0 = Math.min(box.x0, px - radius - 1); box.y0 = Math.min(box.y0, py - radius - 1);
      box.x1 = Math.max(box.x1, px + radius + 1); box.y1 = Math.max(box.y1, py + radius + 1);
      if (stroke.tool.snap) stroke.seeds.push(Math.round(px), Math.round(py));
    }
    stroke.last = { x, y };
    const r = stroke.rect;
    r.x0 = Math.min(r.x0, box.x0); r.y0 = Math.min(r.y0, box.y0);
    r.x1 = Math.max(r.x1, box.x1); r.y1 = Math.max(r.y1, box.y1);
    const dirty = clampRect(box, this.width, this.height);
    if (dirty) this.onChange(dirty);
  }

  dab(tool, x, y, radius) {
    if (tool.snap) {
      // the footprint: hard, drawn on the tint; applied at the end
      this.tintCtx.fillStyle = tool.mode === "erase" ? "rgba(220, 38, 38, 1)" : "rgba(22, 163, 74, 1)";
      this.tintCtx.beginPath();
      this.tintCtx.arc(x, y, radius, 0, Math.PI * 2);
      this.tintCtx.fill();
      return;
    }
    const ctx = this.ctx;
    ctx.save();
    ctx.globalCompositeOperation = tool.mode === "erase" ? "destination-out" : "source-over";
    const hard = Math.max(0, Math.min(1, 1 - tool.softness));
    if (hard >= 1) {
      ctx.fillStyle = "#fff";
    } else {
      const gradient = ctx.createRadialGradient(x, y, radius * hard, x, y, radius);
      gradient.addColorStop(0, "rgba(255, 255, 255, 1)");
      gradient.addColorStop(1, "rgba(255, 255, 255, 0)");
      ctx.fillStyle = gradient;
    }
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, Math.PI * 2);
    ctx.fill();
    ctx.restore();
  }

  end() {
    const stroke = this.stroke;
    this.stroke = null;
    if (!stroke) return false;
    const rect = clampRect(stroke.rect, this.width, this.height);
    if (!rect) return false;
    if (stroke.tool.snap) this.applySnap(stroke, rect);
    const before = this.backupCtx.getImageData(rect.x, rect.y, rect.w, rect.h);
    const after = this.ctx.getImageData(rect.x, rect.y, rect.w, rect.h);
    this.undoStack.push({ rect, before, after });
    this.redoStack = [];
    // the oldest strokes go first when there are too many or they hold too many pixels
    let bytes = this.undoStack.reduce((sum, step) => sum + bytesOf(step), 0);
    while (this.undoStack.length > 1 && (this.undoStack.length > HISTORY || bytes > HISTORY_BYTES)) {
      bytes -= bytesOf(this.undoStack.shift());
    }
    this.onChange(rect);
    return true;
  }

  // the edge brush on release: the footprint's part that the photo's edges allow
  applySnap(stroke, rect) {
    const { x, y, w, h } = rect;
    const tint = this.tintCtx.getImageData(x, y, w, h).data;
    this.tintCtx.clearRect(x, y, w, h);
    const footprint = new Uint8Array(w * h);
    for (let i = 0; i < footprint.length; i++) footprint[i] = tint[i * 4 + 3] > 127 ? 1 : 0;
    const seeds = [];
    for (let i = 0; i < stroke.seeds.length; i += 2) {
      const sx = stroke.seeds[i] - x;
      const sy = stroke.seeds[i + 1] - y;
      if (sx >= 0 && sy >= 0 && sx < w && sy < h) seeds.push(sy * w + sx);
    }
    const region = snapRegion(this.pixelsOfPhoto(rect), w, h, footprint, seeds);
    const image = this.ctx.getImageData(x, y, w, h);
    const value = stroke.tool.mode === "erase" ? 0 : 255;
    for (let i = 0; i < region.length; i++) {
      if (!region[i]) continue;
      const p = i * 4;
      image.data[p] = 255; image.data[p + 1] = 255; image.data[p + 2] = 255; image.data[p + 3] = value;
    }
    this.ctx.putImageData(image, x, y);
  }

  pixelsOfPhoto(rect) {
    if (!this.photoPixels) {
      const copy = canvas(this.width, this.height);
      const ctx = copy.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(this.photo, 0, 0);
      this.photoPixels = ctx.getImageData(0, 0, this.width, this.height).data;
    }
    const out = new Uint8ClampedArray(rect.w * rect.h * 4);
    for (let row = 0; row < rect.h; row++) {
      const start = ((rect.y + row) * this.width + rect.x) * 4;
      out.set(this.photoPixels.subarray(start, start + rect.w * 4), row * rect.w * 4);
    }
    return out;
  }

  cancel() {
    if (!this.stroke) return;
    this.stroke = null;
    this.ctx.clearRect(0, 0, this.width, this.height);
    this.ctx.drawImage(this.backup, 0, 0);
    this.tintCtx.clearRect(0, 0, this.width, this.height);
    this.onChange(null);
  }

  undo() { this.replay(this.undoStack, this.redoStack, "before"); }
  redo() { this.replay(this.redoStack, this.undoStack, "after"); }

  replay(from, to, side) {
    if (this.stroke) this.cancel();
    const step = from.pop();
    if (!step) return;
    this.ctx.putImageData(step[side], step.rect.x, step.rect.y);
    to.push(step);
    this.onChange(step.rect);
  }

  // the mask as Save sends it: a PNG the input's size, the mask in its alpha
  png() {
    return new Promise((resolve, reject) => {
      this.mask.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the mask could not be encoded"))), "image/png");
    });
  }
}
