// Zoom and pan for the editor (editor.js), and which pointer does what.
//
// The canvas keeps the photo's own size and is placed with a CSS transform
// (translate, then scale). Pointer Events serve mouse, pen and touch alike: one pointer
// draws (or pans with the hand tool, the Space bar held, or the middle button); two
// touching pointers pinch to zoom and move the view; the wheel zooms at the pointer.

const MIN_ZOOM = 0.05;
const MAX_ZOOM = 32;
const STEP = 1.25;

export class Viewport {
  // view: the element that receives pointers; target: the canvas it places;
  // draw: {start(x, y, pressure, event), move(x, y, pressure), end(), cancel()} in photo pixels
  constructor(view, target, draw, onZoom) {
    this.view = view;
    this.target = target;
    this.draw = draw;
    this.onZoom = onZoom;
    this.zoom = 1;
    this.x = 0;
    this.y = 0;
    this.width = 1;
    this.height = 1;
    this.pointers = new Map(); // id -> {x, y} in view pixels
    this.mode = null; // "draw" | "pan" | "pinch"
    this.panning = false; // the hand tool or the Space bar
    this.last = null;
    this.fitted = true;
    this.bind();
  }

  setSize(width, height) {
    this.width = width;
    this.height = height;
    this.fit();
  }

  fit() {
    const box = this.view.getBoundingClientRect();
    const margin = 16;
    const zoom = Math.min((box.width - margin * 2) / this.width, (box.height - margin * 2) / this.height);
    this.zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, zoom > 0 ? zoom : 1));
    this.x = (box.width - this.width * this.zoom) / 2;
    this.y = (box.height - this.height * this.zoom) / 2;
    this.apply();
    this.fitted = true;
  }

  // the window changed size: fit again unless the user has zoomed or moved the view (a
  // phone's address bar coming and going must not undo their zoom)
  resized() {
    if (this.fitted) this.fit();
  }

  // zoom by `factor` keeping the view point (cx, cy) still; the centre by default
  zoomBy(factor, cx, cy) {
    const box = this.view.getBoundingClientRect();
    const px = cx === undefined ? box.width / 2 : cx;
    const py = cy === undefined ? box.height / 2 : cy;
    const zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, this.zoom * factor));
    const k = zoom / this.zoom;
    this.x = px - (px - this.x) * k;
    this.y = py - (py - this.y) * k;
    this.zoom = zoom;
    this.fitted = false;
    this.apply();
  }

  zoomIn() { this.zoomBy(STEP); }
  zoomOut() { this.zoomBy(1 / STEP); }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.fitted = false;
    this.apply();
  }

  apply() {
    this.target.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.zoom})`;
    this.target.classList.toggle("is-pixelated", this.zoom >= 3);
    this.onZoom(this.zoom);
  }

  // a point of the view (CSS pixels from its corner) in photo pixels
  toPhoto(vx, vy) {
    return { x: (vx - this.x) / this.zoom, y: (vy - this.y) / this.zoom };
  }

  local(event) {
    const box = this.view.getBoundingClientRect();
    return { x: event.clientX - box.left, y: event.clientY - box.top };
  }

  bind() {
    const view = this.view;
    view.addEventListener("pointerdown", (event) => this.down(event));
    view.addEventListener("pointermove", (event) => this.moveEvent(event));
    view.addEventListener("pointerup", (event) => this.up(event));
    view.addEventListener("pointercancel", (event) => this.up(event, true));
    view.addEventListener("lostpointercapture", (event) => { if (this.pointers.has(event.pointerId)) this.up(event); });
    view.addEventListener("wheel", (event) => {
      event.preventDefault();
      const point = this.local(event);
      if (event.ctrlKey || !event.shiftKey) this.zoomBy(Math.exp(-event.deltaY * 0.0015), point.x, point.y);
      else this.panBy(-event.deltaX, -event.deltaY);
    }, { passive: false });
    view.addEventListener("contextmenu", (event) => event.preventDefault());
  }

  down(event) {
    if (event.pointerType === "mouse" && event.button !== 0 && event.button !== 1) return;
    event.preventDefault();
    focusView(this.view);
    try {
      this.view.setPointerCapture(event.pointerId);
    } catch (_) {
      // a pointer the browser no longer tracks: the stroke still works inside the view
    }
    const point = this.local(event);
    this.pointers.set(event.pointerId, point);
    if (this.pointers.size === 2) {
      // a second finger: no stroke, but pinch and move
      if (this.mode === "draw") this.draw.cancel();
      this.mode = "pinch";
      this.last = this.pinchState();
      return;
    }
    if (this.pointers.size > 2) return;
    if (this.panning || event.button === 1) {
      this.mode = "pan";
      this.last = point;
      return;
    }
    this.mode = "draw";
    const at = this.toPhoto(point.x, point.y);
    this.draw.start(at.x, at.y, pressureOf(event), event);
  }

  moveEvent(event) {
    const point = this.local(event);
    this.draw.hover(point, this.zoom);
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.set(event.pointerId, point);
    if (this.mode === "draw") {
      const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
      for (const e of events.length ? events : [event]) {
        const p = this.local(e);
        const at = this.toPhoto(p.x, p.y);
        this.draw.move(at.x, at.y, pressureOf(e));
      }
    } else if (this.mode === "pan") {
      this.panBy(point.x - this.last.x, point.y - this.last.y);
      this.last = point;
    } else if (this.mode === "pinch" && this.pointers.size === 2) {
      const now = this.pinchState();
      this.panBy(now.cx - this.last.cx, now.cy - this.last.cy);
      if (this.last.span > 0) this.zoomBy(now.span / this.last.span, now.cx, now.cy);
      this.last = now;
    }
  }

  up(event, canceled = false) {
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.delete(event.pointerId);
    if (this.mode === "draw") {
      if (canceled) this.draw.cancel();
      else this.draw.end();
    }
    if (this.pointers.size === 0) this.mode = null;
    else if (this.mode === "pinch") this.mode = "pan-wait"; // one finger left: nothing until lifted
  }

  pinchState() {
    const [a, b] = [...this.pointers.values()];
    return { cx: (a.x + b.x) / 2, cy: (a.y + b.y) / 2, span: Math.hypot(a.x - b.x, a.y - b.y) };
  }
}

function pressureOf(event) {
  // a pen's pressure thins the brush; mouse and touch report 0.5 while pressed
  return event.pointerType === "pen" && event.pressure > 0 ? Math.max(0.15, event.pressure) : 1;
}

function focusView(view) {
  if (document.activeElement !== view) view.focus({ preventScroll: true });
}
