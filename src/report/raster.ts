/**
 * A tiny RGB raster for report images (curves, strips): lines, rectangles and a 3×5 pixel font, so
 * images can be written without a graphics library. Platform-neutral; PNG encoding is done by the caller.
 */

// 3×5 glyphs, rows top to bottom, 3 bits each (MSB = left)
const GLYPHS: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7],
  '1': [2, 6, 2, 2, 7],
  '2': [7, 1, 7, 4, 7],
  '3': [7, 1, 7, 1, 7],
  '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7],
  '6': [7, 4, 7, 5, 7],
  '7': [7, 1, 1, 2, 2],
  '8': [7, 5, 7, 5, 7],
  '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2],
  '-': [0, 0, 7, 0, 0],
  '+': [0, 2, 7, 2, 0],
  ':': [0, 2, 0, 2, 0],
  '/': [1, 1, 2, 4, 4],
  '(': [2, 4, 4, 4, 2],
  ')': [2, 1, 1, 1, 2],
  '%': [5, 1, 2, 4, 5],
  '=': [0, 7, 0, 7, 0],
  ' ': [0, 0, 0, 0, 0],
  a: [0, 7, 1, 7, 7],
  b: [4, 4, 7, 5, 7],
  c: [0, 7, 4, 4, 7],
  d: [1, 1, 7, 5, 7],
  e: [7, 5, 7, 4, 7],
  f: [3, 4, 6, 4, 4],
  g: [7, 5, 7, 1, 7],
  h: [4, 4, 7, 5, 5],
  i: [2, 0, 2, 2, 2],
  j: [1, 0, 1, 5, 7],
  k: [4, 5, 6, 5, 5],
  l: [4, 4, 4, 4, 3],
  m: [0, 7, 7, 5, 5],
  n: [0, 6, 5, 5, 5],
  o: [0, 7, 5, 5, 7],
  p: [7, 5, 7, 4, 4],
  q: [7, 5, 7, 1, 1],
  r: [0, 7, 4, 4, 4],
  s: [0, 7, 6, 1, 7],
  t: [4, 7, 4, 4, 3],
  u: [0, 5, 5, 5, 7],
  v: [0, 5, 5, 5, 2],
  w: [0, 5, 5, 7, 7],
  x: [0, 5, 2, 5, 5],
  y: [5, 5, 7, 1, 7],
  z: [0, 7, 1, 4, 7],
};

export type Rgb = [number, number, number];

export class Raster {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.data = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) this.data.set([...background, 255], i * 4);
  }

  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.data.set(c, (y * this.width + x) * 4);
  }

  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }

  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1): void {
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1) * 2;
    for (let k = 0; k <= n; k++) {
      const x = x0 + ((x1 - x0) * k) / n;
      const y = y0 + ((y1 - y0) * k) / n;
      this.rect(x - (thick >> 1), y - (thick >> 1), thick, thick, c);
    }
  }

  /** Text in the 3×5 font at `scale` pixels per font pixel; unknown characters are skipped. */
  text(x: number, y: number, s: string, c: Rgb, scale = 2): number {
    for (const ch of s.toLowerCase()) {
      const g = GLYPHS[ch];
      if (g)
        g.forEach((row, r) => {
          for (let b = 0; b < 3; b++)
            if (row & (4 >> b)) this.rect(x + b * scale, y + r * scale, scale, scale, c);
        });
      x += 4 * scale;
    }
    return x;
  }

  /** Paste an RGB image (HWC 8-bit) at (x, y). */
  paste(x: number, y: number, w: number, h: number, rgb: Uint8Array): void {
    for (let j = 0; j < h; j++)
      for (let i = 0; i < w; i++)
        this.set(x + i, y + j, [rgb[(j * w + i) * 3]!, rgb[(j * w + i) * 3 + 1]!, rgb[(j * w + i) * 3 + 2]!]);
  }
}

/** A simple line chart of several series over a shared x axis (epochs); NaN marks a missing value. */
export function lineChart(
  title: string,
  series: { name: string; values: number[]; color: Rgb }[],
  width = 640,
  height = 360,
): Raster {
  const r = new Raster(width, height);
  const left = 70;
  const right = width - 20;
  const top = 40;
  const bottom = height - 40;
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (hi - lo < 1e-12) [lo, hi] = [lo - 0.5, hi + 0.5];
  const n = Math.max(...series.map((s) => s.values.length), 2);
  const gx = (i: number) => left + ((right - left) * i) / (n - 1);
  const gy = (v: number) => bottom - ((bottom - top) * (v - lo)) / (hi - lo);
  const grey: Rgb = [200, 200, 200];
  const ink: Rgb = [40, 40, 40];
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    r.line(left, gy(v), right, gy(v), grey);
    r.text(4, gy(v) - 5, v.toPrecision(3), ink);
  }
  r.line(left, top, left, bottom, ink);
  r.line(left, bottom, right, bottom, ink);
  r.text(left, height - 24, `epoch 1`, ink);
  r.text(right - 60, height - 24, `epoch ${n}`, ink);
  r.text(left, 12, title, ink, 3);
  let lx = right - 10 - series.reduce((a, s) => a + (s.name.length + 3) * 8, 0);
  for (const s of series) {
    r.rect(lx, 16, 12, 8, s.color);
    lx = r.text(lx + 16, 15, s.name, ink) + 8;
    // non-finite values are gaps (a series measured only at some epochs): lines join the finite points,
    // and a sparse series also gets a marker at each point
    const sparse = s.values.length === 1 || !s.values.every(Number.isFinite);
    let prev = -1;
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i]!;
      if (!Number.isFinite(v)) continue;
      if (prev >= 0) r.line(gx(prev), gy(s.values[prev]!), gx(i), gy(v), s.color, 2);
      if (sparse) r.rect(gx(i) - 2, gy(v) - 2, 5, 5, s.color);
      prev = i;
    }
  }
  return r;
}

/** Rasters of the same width one below the other. */
export function stackRasters(parts: Raster[]): Raster {
  const width = parts[0]!.width;
  if (parts.some((p) => p.width !== width)) throw new Error('stackRasters: the rasters differ in width');
  const out = new Raster(
    width,
    parts.reduce((a, p) => a + p.height, 0),
  );
  let offset = 0;
  for (const p of parts) {
    out.data.set(p.data, offset);
    offset += p.data.length;
  }
  return out;
}
