/**
 * The anomaly-map ops against CPU references written here: resizeBilinear (PyTorch align_corners=True,
 * forward and adjoint, including 1-pixel inputs and outputs and non-integer factors) and gaussianBlur
 * (scipy.ndimage.gaussian_filter, mode 'reflect', including images smaller than the radius and both
 * the tiled and the direct kernels).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backward,
  gaussianBlur,
  gaussianRadius,
  gaussianWeights,
  noGrad,
  resizeBilinear,
  runtime,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { MAX_TILED_RADIUS } from '../../src/shaders/blur.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** max |a − b| / max(1e-30, max |b|) */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let d = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    s = Math.max(s, Math.abs(want[i]!));
  }
  return d / Math.max(s, 1e-30);
}

// ---- CPU references ----

/** PyTorch's source index rule for align_corners=True, in float64 (scale·o, floor, clamp). */
function src(o: number, nIn: number, nOut: number): [number, number, number] {
  const scale = nOut > 1 ? (nIn - 1) / (nOut - 1) : 0;
  const s = scale * o;
  const i0 = Math.min(Math.floor(s), nIn - 1);
  const i1 = i0 + (i0 < nIn - 1 ? 1 : 0);
  return [i0, i1, s - i0];
}

function bilinearRef(x: Float32Array, planes: number, ih: number, iw: number, oh: number, ow: number) {
  const y = new Float64Array(planes * oh * ow);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < oh; oy++) {
      const [y0, y1, ly] = src(oy, ih, oh);
      for (let ox = 0; ox < ow; ox++) {
        const [x0, x1, lx] = src(ox, iw, ow);
        const at = (r: number, c: number) => x[(p * ih + r) * iw + c]!;
        y[(p * oh + oy) * ow + ox] =
          (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) +
          ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
      }
    }
  return y;
}

/** The adjoint by scattering (the formulation the GPU kernel avoids). */
function bilinearAdjointRef(g: Float32Array, planes: number, ih: number, iw: number, oh: number, ow: number) {
  const dx = new Float64Array(planes * ih * iw);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < oh; oy++) {
      const [y0, y1, ly] = src(oy, ih, oh);
      for (let ox = 0; ox < ow; ox++) {
        const [x0, x1, lx] = src(ox, iw, ow);
        const v = g[(p * oh + oy) * ow + ox]!;
        const add = (r: number, c: number, w: number) => {
          dx[(p * ih + r) * iw + c]! += w * v;
        };
        add(y0, x0, (1 - ly) * (1 - lx));
        add(y0, x1, (1 - ly) * lx);
        add(y1, x0, ly * (1 - lx));
        add(y1, x1, ly * lx);
      }
    }
  return dx;
}

/** scipy's 'reflect' extension: period 2n, edge sample repeated. */
function reflect(j: number, n: number): number {
  const p = 2 * n;
  let m = j % p;
  if (m < 0) m += p;
  return m < n ? m : p - 1 - m;
}

/** scipy.ndimage.gaussian_filter on each [h, w] plane (axis 0 then axis 1), float64. */
function gaussRef(x: Float32Array, planes: number, h: number, w: number, sigma: number, truncate: number) {
  const r = Math.floor(truncate * sigma + 0.5);
  const k: number[] = [];
  for (let t = -r; t <= r; t++) k.push(Math.exp((-0.5 / (sigma * sigma)) * t * t));
  const sum = k.reduce((a, b) => a + b, 0);
  const wt = k.map((v) => v / sum);
  const mid = new Float64Array(x.length);
  const out = new Float64Array(x.length);
  for (let p = 0; p < planes; p++) {
    const o = p * h * w;
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        let acc = 0;
        for (let t = -r; t <= r; t++) acc += wt[t + r]! * x[o + reflect(i + t, h) * w + j]!;
        mid[o + i * w + j] = acc;
      }
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        let acc = 0;
        for (let t = -r; t <= r; t++) acc += wt[t + r]! * mid[o + i * w + reflect(j + t, w)]!;
        out[o + i * w + j] = acc;
      }
  }
  return out;
}

async function readDispose(t: Tensor): Promise<Float32Array> {
  const v = await t.read();
  t.dispose();
  return v;
}

// ---- resizeBilinear ----

const RESIZE_CASES: [number[], number, number, string][] = [
  [[2, 3, 5, 7], 11, 4, 'up by 2.5 in H, down in W'],
  [[1, 1, 1, 1], 3, 5, '1-pixel input'],
  [[1, 2, 6, 5], 1, 1, '1-pixel output (source 0)'],
  [[1, 1, 4, 4], 1, 7, 'one output row'],
  [[2, 9, 3], 16, 8, 'rank 3'],
  [[1, 1, 3, 3], 3, 3, 'same size'],
  [[3, 1, 7, 13], 50, 29, 'non-integer factors'],
  [[1, 1, 16, 16], 256, 256, 'RD++ 16 → 256'],
  [[1, 1, 64, 64], 256, 256, 'RD++ 64 → 256'],
  [[1, 1, 9, 300], 2, 37, 'downsampling'],
];

describe('resizeBilinear', () => {
  for (const [shape, oh, ow, what] of RESIZE_CASES) {
    it(`forward and adjoint ${shape.join('×')} → ${oh}×${ow} (${what})`, async () => {
      const ih = shape[shape.length - 2]!;
      const iw = shape[shape.length - 1]!;
      const planes = numel(shape) / (ih * iw);
      const xd = randn(numel(shape), 3);
      const x = tensor(xd, shape);
      x.requiresGrad = true;
      const y = resizeBilinear(x, oh, ow);
      expect(y.shape).toEqual([...shape.slice(0, -2), oh, ow]);
      const gd = randn(y.size, 4);
      backward(y, tensor(gd, y.shape));
      const got = await readDispose(y);
      expect(relErr(got, bilinearRef(xd, planes, ih, iw, oh, ow))).toBeLessThan(1e-6);
      const dx = await readDispose(x.grad!);
      expect(relErr(dx, bilinearAdjointRef(gd, planes, ih, iw, oh, ow))).toBeLessThan(2e-6);
      x.dispose();
    });
  }

  it('reproduces the input exactly when the size does not change, and corners always', async () => {
    const xd = randn(2 * 6 * 11, 5);
    const x = tensor(xd, [2, 6, 11]);
    expect(Array.from(await readDispose(resizeBilinear(x, 6, 11)))).toEqual(Array.from(xd));
    const y = await readDispose(resizeBilinear(x, 23, 4));
    for (let p = 0; p < 2; p++) {
      expect(y[p * 23 * 4]).toBe(xd[p * 66]);
      expect(y[p * 23 * 4 + 23 * 4 - 1]).toBe(xd[p * 66 + 65]);
    }
    x.dispose();
  });

  it('spec example: 4 → 7 samples at 0, 0.5, 1, …, 3', async () => {
    const x = tensor([0, 10, 20, 30], [1, 1, 1, 4]);
    expect(Array.from(await readDispose(resizeBilinear(x, 1, 7)))).toEqual([0, 5, 10, 15, 20, 25, 30]);
    x.dispose();
  });

  it('gradient check', async () => {
    const { errors } = await gradcheck(
      (a) => resizeBilinear(a, 7, 3),
      [{ data: randn(40, 9), shape: [1, 2, 4, 5] }],
    );
    for (const e of errors) expect(e).toBeLessThan(1e-3);
  });

  it('does not leak', async () => {
    const x = tensor(randn(2 * 8 * 8, 1), [2, 1, 8, 8]);
    x.requiresGrad = true;
    await runtime().sync();
    const before = runtime().pool.snapshot().liveBytes;
    const y = resizeBilinear(x, 20, 30);
    const g = tensor(randn(600 * 2, 2), y.shape);
    backward(y, g);
    y.dispose();
    g.dispose();
    x.grad!.dispose();
    x.grad = null;
    await runtime().sync();
    expect(runtime().pool.snapshot().liveBytes).toBe(before);
    x.dispose();
  });

  it('rejects bad input with a clear message', () => {
    const x = tensor(randn(16, 1), [4, 4]);
    expect(() => resizeBilinear(x, 8, 8)).toThrow(/resizeBilinear: x .*\[4, 4\].*rank 4 or 3/);
    const x4 = x.view([1, 1, 4, 4]);
    expect(() => resizeBilinear(x4, 0, 8)).toThrow(/resizeBilinear: outH must be a positive integer, got 0/);
    expect(() => resizeBilinear(x4, 8, 2.5)).toThrow(/outW must be a positive integer, got 2.5/);
    x.dispose();
    x4.dispose();
  });
});

// ---- gaussianBlur ----

const BLUR_CASES: [number[], number, number, string][] = [
  [[5, 7], 4, 4, 'smaller than the radius'],
  [[20, 20], 4, 4, 'RD++ settings'],
  [[64, 64], 4, 4, 'RD++ settings'],
  [[3, 3], 4, 4, 'far smaller than the radius (reflects repeatedly)'],
  [[1, 1], 4, 4, 'one pixel'],
  [[1, 9], 4, 4, 'one row'],
  [[2, 3, 20, 20], 4, 4, 'each image separately'],
  [[70, 150], 4, 4, 'several tiles, partial edge tiles'],
  [[33, 70], 1.5, 2, 'radius 3'],
  [[20, 20], 7, 4, 'radius 28: direct kernel'],
  [[2, 5, 9], 7, 4, 'direct kernel, smaller than the radius'],
  [[40, 130], 0.3, 4, 'radius 1'],
];

describe('gaussianBlur', () => {
  for (const [shape, sigma, truncate, what] of BLUR_CASES) {
    it(`${shape.join('×')} σ ${sigma} truncate ${truncate} (${what})`, async () => {
      const h = shape[shape.length - 2]!;
      const w = shape[shape.length - 1]!;
      const xd = randn(numel(shape), 11);
      const x = tensor(xd, shape);
      const y = gaussianBlur(x, sigma, truncate);
      expect(y.shape).toEqual(shape);
      const got = await readDispose(y);
      expect(relErr(got, gaussRef(xd, numel(shape) / (h * w), h, w, sigma, truncate))).toBeLessThan(2e-6);
      x.dispose();
    });
  }

  it('uses both kernel kinds in the cases above', () => {
    expect(gaussianRadius(4, 4)).toBe(16);
    expect(gaussianRadius(4, 4)).toBeLessThanOrEqual(MAX_TILED_RADIUS);
    expect(gaussianRadius(7, 4)).toBeGreaterThan(MAX_TILED_RADIUS);
  });

  it('has scipy weights: 33 taps for σ 4, normalised, symmetric', () => {
    const k = gaussianWeights(4, gaussianRadius(4, 4));
    expect(k.length).toBe(33);
    expect(k.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 14);
    expect(k[0]! / k[16]!).toBeCloseTo(Math.exp(-256 / 32), 14);
    for (let i = 0; i < 33; i++) expect(k[i]).toBe(k[32 - i]);
  });

  it('keeps a constant image constant', async () => {
    const x = tensor(new Float32Array(30 * 41).fill(0.75), [30, 41]);
    for (const v of await readDispose(gaussianBlur(x))) expect(v).toBeCloseTo(0.75, 6);
    x.dispose();
  });

  it('has no backward: refuses a tensor that requires a gradient unless under noGrad', async () => {
    const x = tensor(randn(64, 1), [8, 8]);
    x.requiresGrad = true;
    expect(() => gaussianBlur(x)).toThrow(/gaussianBlur: .* no backward \(evaluation only\).*noGrad/);
    const y = noGrad(() => gaussianBlur(x));
    expect(y.requiresGrad).toBe(false);
    y.dispose();
    x.dispose();
  });

  it('rejects bad input with a clear message', () => {
    const x = tensor(randn(8, 1), [8]);
    expect(() => gaussianBlur(x)).toThrow(/gaussianBlur: x .*\[8\].*at least 2 dims/);
    const x2 = x.view([2, 4]);
    expect(() => gaussianBlur(x2, 0)).toThrow(/sigma must be a positive number, got 0/);
    expect(() => gaussianBlur(x2, 4, -1)).toThrow(/truncate must be a non-negative number, got -1/);
    x.dispose();
    x2.dispose();
  });

  it('does not leak', async () => {
    const x = tensor(randn(2 * 30 * 30, 1), [2, 30, 30]);
    await runtime().sync();
    const before = runtime().pool.snapshot().liveBytes;
    gaussianBlur(x).dispose();
    gaussianBlur(x, 9).dispose();
    await runtime().sync();
    expect(runtime().pool.snapshot().liveBytes).toBe(before);
    x.dispose();
  });
});
