/**
 * 8-connected components of a binary mask (scipy `ndimage.label` with a 3×3 ones structure, skimage
 * `measure.label` with its default full connectivity in 2-D): pixels that touch by an edge or a corner
 * belong to the same component. Flood fill with an explicit Int32Array stack (no recursion, no objects);
 * components are numbered 1, 2, … in raster order of their first pixel, background is 0.
 */

export interface Components {
  /** Per pixel (row-major h×w): 0 for background, else the component number 1..count. */
  labels: Int32Array;
  count: number;
  /** Pixels per component: sizes[c] for component c (sizes[0] = background pixels). */
  sizes: Int32Array;
}

/** Label the 8-connected components of `mask` (foreground = any nonzero value), an h×w row-major image. */
export function connectedComponents8(mask: ArrayLike<number>, h: number, w: number): Components {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1)
    throw new Error(`connectedComponents8: bad size ${h}×${w}`);
  if (mask.length !== h * w)
    throw new Error(`connectedComponents8: mask has ${mask.length} pixels, expected ${h}×${w} = ${h * w}`);
  const n = h * w;
  const labels = new Int32Array(n);
  const stack = new Int32Array(n);
  const sizes: number[] = [0];
  let count = 0;
  for (let start = 0; start < n; start++) {
    if (mask[start] === 0 || labels[start] !== 0) continue;
    const id = ++count;
    let size = 0;
    let top = 0;
    stack[top++] = start;
    labels[start] = id;
    while (top > 0) {
      const p = stack[--top]!;
      size++;
      const y = (p / w) | 0;
      const x = p - y * w;
      const y0 = y > 0 ? y - 1 : 0;
      const y1 = y < h - 1 ? y + 1 : y;
      const x0 = x > 0 ? x - 1 : 0;
      const x1 = x < w - 1 ? x + 1 : x;
      for (let yy = y0; yy <= y1; yy++) {
        for (let xx = x0; xx <= x1; xx++) {
          const q = yy * w + xx;
          if (labels[q] === 0 && mask[q] !== 0) {
            labels[q] = id;
            stack[top++] = q;
          }
        }
      }
    }
    sizes.push(size);
  }
  const out = Int32Array.from(sizes);
  out[0] = n - sizes.reduce((a, b) => a + b, 0);
  return { labels, count, sizes: out };
}
