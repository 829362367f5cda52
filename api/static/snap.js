// The edge brush: a stroke that follows the photo's own edges (editor.js).
//
// Within the stroke's footprint (every pixel the brush touched), the region grows from
// the pixels under the stroke's centre line into neighbouring pixels whose colour stays
// close to the colour of the seed pixel it grew from. A colour edge in the photo stops
// it, so a rough stroke along a product's outline erases (or restores) the background
// side only, up to the edge. Plain arrays and loops: no canvas, testable on its own, and
// timed on a 2000×2000 photo by bench/editor_snap.py.

export const DEFAULT_TOLERANCE = 48; // RGB distance (0-441) a region may drift from its seed

// rgba: the photo's pixels in the box (Uint8ClampedArray, width*height*4);
// footprint: Uint8Array width*height, non-zero where the brush went;
// seeds: Int32Array (or array) of pixel indices in the box on the stroke's centre line.
// Returns Uint8Array width*height: 1 where the stroke applies.
export function snapRegion(rgba, width, height, footprint, seeds, tolerance = DEFAULT_TOLERANCE) {
  const count = width * height;
  const out = new Uint8Array(count);
  const origin = new Int32Array(count); // the seed each pixel grew from
  const queue = new Int32Array(count);
  const limit = tolerance * tolerance;
  let head = 0;
  let tail = 0;
  for (const seed of seeds) {
    if (seed < 0 || seed >= count || out[seed] || !footprint[seed]) continue;
    out[seed] = 1;
    origin[seed] = seed;
    queue[tail++] = seed;
  }
  while (head < tail) {
    const p = queue[head++];
    const o = origin[p] * 4;
    const r = rgba[o];
    const g = rgba[o + 1];
    const b = rgba[o + 2];
    const x = p % width;
    // the four neighbours, each inside the box and the footprint, not yet taken
    for (let k = 0; k < 4; k++) {
      let q;
      if (k === 0) { if (x === 0) continue; q = p - 1; }
      else if (k === 1) { if (x === width - 1) continue; q = p + 1; }
      else if (k === 2) { q = p - width; if (q < 0) continue; }
      else { q = p + width; if (q >= count) continue; }
      if (out[q] || !footprint[q]) continue;
      const i = q * 4;
      const dr = rgba[i] - r;
      const dg = rgba[i + 1] - g;
      const db = rgba[i + 2] - b;
      if (dr * dr + dg * dg + db * db > limit) continue;
      out[q] = 1;
      origin[q] = origin[p];
      queue[tail++] = q;
    }
  }
  return out;
}
