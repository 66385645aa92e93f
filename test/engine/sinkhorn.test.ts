/**
 * softmaxRows and sinkhornLoss: the spec's Appendix A test vector, a float64 CPU reference of the whole
 * geomloss algorithm (written here, independent of the kernels), gradient checks, big-D softmax accuracy,
 * every kernel path (one-chunk / multi-chunk softmax; cost matrix in shared or global memory), leaks and
 * error messages.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backward,
  epsilonSchedule,
  noGrad,
  ones,
  runtime,
  scope,
  sinkhornLoss,
  softmaxRows,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';
import { refEpsilons, relErr, sinkhornRef as sinkhornRefFlat } from '../helpers/sinkhorn-ref.js';

beforeAll(async () => {
  await gpu();
});

// ---------------------------------------------------------------------------------------------------
// the float64 reference (test/helpers/sinkhorn-ref.ts) on nested arrays, at RD++'s diameter 1e7

type Mat = number[][];

interface RefResult {
  value: number;
  dx: Mat;
  dy: Mat;
}

function sinkhornRef(x: Mat, y: Mat): RefResult {
  const D = x[0]!.length;
  const r = sinkhornRefFlat(
    Float64Array.from(x.flat()),
    x.length,
    Float64Array.from(y.flat()),
    y.length,
    D,
    1e7,
  );
  return { value: r.value, dx: toMat(r.dx, x.length, D), dy: toMat(r.dy, y.length, D) };
}

// ---------------------------------------------------------------------------------------------------
// helpers

const toMat = (d: ArrayLike<number>, rows: number, cols: number, off = 0): Mat =>
  Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, k) => Number(d[off + i * cols + k])),
  );

const flat = (m: Mat) => m.flat();

function leaf(data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/** Value(s) and both gradients of Σ sinkhornLoss(x, y) on the GPU. */
async function gpuSinkhorn(
  xd: Float32Array,
  xs: number[],
  yd: Float32Array,
  ys: number[],
): Promise<{ value: Float32Array; dx: Float32Array; dy: Float32Array }> {
  const x = leaf(xd, xs);
  const y = leaf(yd, ys);
  const out = scope(() => {
    const v = sinkhornLoss(x, y);
    backward(v, ones(v.shape));
    return v;
  });
  const res = { value: await out.read(), dx: await x.grad!.read(), dy: await y.grad!.read() };
  for (const t of [out, x.grad!, y.grad!, x, y]) t.dispose();
  return res;
}

function softmaxCpu(d: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(d.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let k = 0; k < cols; k++) m = Math.max(m, d[r * cols + k]!);
    let s = 0;
    for (let k = 0; k < cols; k++) s += Math.exp(d[r * cols + k]! - m);
    for (let k = 0; k < cols; k++) out[r * cols + k] = Math.exp(d[r * cols + k]! - m) / s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------

describe('sinkhornLoss', () => {
  it('ε schedule: 375 values like numpy (1e14, 1e14, 9.025e13, …, 0.0029574, 0.0026691, 0.0025)', () => {
    const e = epsilonSchedule();
    expect(e.length).toBe(375);
    expect(e).toEqual(refEpsilons(1e7));
    expect(e[0]).toBe(1e14);
    expect(e[1]! / 1e14).toBeCloseTo(1, 12);
    expect(e[2]! / 9.025e13).toBeCloseTo(1, 12);
    expect(e[372]).toBeCloseTo(0.0029574, 7);
    expect(e[373]).toBeCloseTo(0.0026691, 7);
    expect(e[374]).toBe(0.05 ** 2);
  });

  it('the CPU reference reproduces Appendix A (guards the reference itself)', () => {
    const r = sinkhornRef(
      [
        [0, 0],
        [1, 0],
        [0, 1],
      ],
      [
        [0.5, 0.5],
        [1, 1],
        [2, 0],
        [0.2, 0.1],
      ],
    );
    expect(Math.abs(r.value - 0.2869360735832256)).toBeLessThan(1e-13);
    // the spec prints 10 decimals
    expect(
      relErr(flat(r.dx), [-0.0990238992, -0.0764763101, -1 / 3, 0, -0.281159771, 0.0521735628]),
    ).toBeLessThan(1e-8);
    expect(relErr(flat(r.dy), [0.125, 0.0025320756, 0.25, 0, 0.25, 0, 0.05, 0.025])).toBeLessThan(1e-8);
  });

  it('Appendix A test vector on the GPU: value 0.2869360735832256 and ∂S/∂X, ∂S/∂Y', async () => {
    const r = await gpuSinkhorn(
      Float32Array.from([0, 0, 1, 0, 0, 1]),
      [3, 2],
      Float32Array.from([0.5, 0.5, 1, 1, 2, 0, 0.2, 0.1]),
      [4, 2],
    );
    expect(r.value.length).toBe(1);
    expect(Math.abs(r.value[0]! - 0.2869360735832256) / 0.2869360735832256).toBeLessThan(2e-6);
    const dx = [-0.0990238992, -0.0764763101, -0.3333333333, 0, -0.281159771, 0.0521735628];
    const dy = [0.125, 0.0025320756, 0.25, 0, 0.25, 0, 0.05, 0.025];
    expect(relErr(r.dx, dx)).toBeLessThan(2e-5);
    expect(relErr(r.dy, dy)).toBeLessThan(2e-5);
  });

  // [name, B (0 = 2-D), N, M, D, scale, softmax first, tolerance on gradients]
  const cases: [string, number, number, number, number, number, boolean, number][] = [
    ['2-D 5 vs 7 points in 3-D (N ≠ M, odd sizes)', 0, 5, 7, 3, 1, false, 5e-4],
    [
      '2-D 16 vs 16 softmaxed points, D = 300 (the RD++ shape, cost in shared memory)',
      0,
      16,
      16,
      300,
      1,
      true,
      2e-5,
    ],
    ['3-D 2 × (9 vs 6) in 5-D', 2, 9, 6, 5, 0.7, false, 5e-4],
    ['3-D 2 × (20 vs 25) in 8-D (K = 45: 64-point kernels)', 2, 20, 25, 8, 1.2, false, 5e-4],
    ['2-D 1 vs 3 points (a single point)', 0, 1, 3, 4, 1, false, 5e-4],
    ['2-D 64 vs 60 points (K = 124: cost in global memory)', 0, 64, 60, 3, 1, false, 5e-4],
  ];
  for (const [name, B, N, M, D, sc, soft, tol] of cases) {
    it(`matches the float64 reference: ${name}`, async () => {
      const nb = Math.max(B, 1);
      let xd = randn(nb * N * D, 11 + N, 2 * sc);
      let yd = randn(nb * M * D, 23 + M, 2 * sc);
      if (soft) {
        xd = Float32Array.from(softmaxCpu(xd, nb * N, D));
        yd = Float32Array.from(softmaxCpu(yd, nb * M, D));
      }
      const xs = B ? [B, N, D] : [N, D];
      const ys = B ? [B, M, D] : [M, D];
      const r = await gpuSinkhorn(xd, xs, yd, ys);
      expect(r.value.length).toBe(nb);
      const wantV: number[] = [];
      const wantX: number[] = [];
      const wantY: number[] = [];
      for (let b = 0; b < nb; b++) {
        const ref = sinkhornRef(toMat(xd, N, D, b * N * D), toMat(yd, M, D, b * M * D));
        wantV.push(ref.value);
        wantX.push(...flat(ref.dx));
        wantY.push(...flat(ref.dy));
      }
      for (let b = 0; b < nb; b++)
        expect(Math.abs(r.value[b]! - wantV[b]!) / Math.abs(wantV[b]!)).toBeLessThan(1e-6);
      expect(relErr(r.dx, wantX)).toBeLessThan(tol);
      expect(relErr(r.dy, wantY)).toBeLessThan(tol);
    });
  }

  it('a cloud against a permutation of itself: value and gradient vanish', async () => {
    const N = 6;
    const D = 40;
    const p = Float32Array.from(softmaxCpu(randn(N * D, 5, 2), N, D));
    const q = new Float32Array(N * D);
    for (let i = 0; i < N; i++) q.set(p.subarray(((i + 1) % N) * D, (((i + 1) % N) + 1) * D), i * D);
    const r = await gpuSinkhorn(p, [N, D], q, [N, D]);
    expect(Math.abs(r.value[0]!)).toBeLessThan(1e-7);
    for (const g of [...r.dx, ...r.dy]) expect(Math.abs(g)).toBeLessThan(1e-7);
  });

  it('finite differences agree with the envelope gradient', async () => {
    // Geomloss's gradient is the envelope-theorem one; it equals the derivative of the computed value
    // when the potentials have converged. Check that for this input with the float64 reference first,
    // so that the GPU comparison below tests the kernels and not the theorem.
    const x = { data: randn(3 * 4, 3), shape: [3, 4] };
    const y = { data: randn(3 * 4, 4), shape: [3, 4] };
    const X = toMat(x.data, 3, 4);
    const Y = toMat(y.data, 3, 4);
    const ref = sinkhornRef(X, Y);
    const h = 1e-5;
    for (const [i, k] of [
      [0, 0],
      [1, 2],
      [2, 3],
    ] as const) {
      const Xp = X.map((r) => [...r]);
      const Xm = X.map((r) => [...r]);
      Xp[i]![k]! += h;
      Xm[i]![k]! -= h;
      const num = (sinkhornRef(Xp, Y).value - sinkhornRef(Xm, Y).value) / (2 * h);
      expect(Math.abs(num - ref.dx[i]![k]!)).toBeLessThan(1e-6);
    }
    const { errors } = await gradcheck((a, b) => sinkhornLoss(a, b!), [x, y], { h: 1e-2 });
    for (const e of errors) expect(e).toBeLessThan(1e-3);
  });

  it('3-D gradient check (per-problem upstream gradients)', async () => {
    const x = { data: randn(2 * 3 * 2, 8), shape: [2, 3, 2] };
    const y = { data: randn(2 * 3 * 2, 9), shape: [2, 3, 2] };
    const { errors } = await gradcheck((a, b) => sinkhornLoss(a, b!), [x, y], { h: 1e-2 });
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });

  it('releases every temporary (forward + backward in a scope)', async () => {
    const rt = runtime();
    const x = leaf(randn(4 * 10, 1), [4, 10]);
    const y = leaf(randn(5 * 10, 2), [5, 10]);
    await rt.sync();
    const before = rt.pool.snapshot().liveBytes;
    scope(() => {
      const v = sinkhornLoss(softmaxRows(x), softmaxRows(y));
      backward(v);
    });
    noGrad(() => scope(() => sinkhornLoss(x, y))).dispose();
    x.grad!.dispose();
    y.grad!.dispose();
    await rt.sync();
    expect(rt.pool.snapshot().liveBytes).toBe(before);
    x.dispose();
    y.dispose();
  });

  it('rejects bad inputs with clear messages', () => {
    const a = tensor(new Float32Array(6), [3, 2]);
    const b = tensor(new Float32Array(6), [2, 3]);
    const c = tensor(new Float32Array(12), [2, 3, 2]);
    const d = tensor(new Float32Array(12), [3, 2, 2]);
    const big = tensor(new Float32Array(130), [130, 1]);
    expect(() => sinkhornLoss(a, b)).toThrow(/sinkhornLoss: point dimensions.*\[3, 2\].*\[2, 3\]/);
    expect(() => sinkhornLoss(a, c)).toThrow(/both be 2-D \[N, D\] or both 3-D/);
    expect(() => sinkhornLoss(c, d)).toThrow(/batch sizes differ/);
    expect(() => sinkhornLoss(big, a.view([6, 1]))).toThrow(/136 points exceed the supported 128/);
    expect(() => sinkhornLoss(a, a, { blur: 0 })).toThrow(/blur must be > 0/);
    expect(() => sinkhornLoss(a, a, { scaling: 1 })).toThrow(/scaling must be in \(0, 1\)/);
    for (const t of [a, b, c, d, big]) t.dispose();
  });
});

describe('softmaxRows', () => {
  it('gradient check (one chunk per row)', async () => {
    const { errors } = await gradcheck(
      (a) => softmaxRows(a),
      [{ data: randn(3 * 2 * 5, 1, 2), shape: [3, 2, 5] }],
      {
        h: 1e-3,
      },
    );
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });

  it('gradient check (several chunks per row)', async () => {
    const { errors } = await gradcheck(
      (a) => softmaxRows(a),
      [{ data: randn(2 * 5000, 2, 1), shape: [2, 5000] }],
      {
        h: 1e-2,
        samples: 8,
      },
    );
    for (const e of errors) expect(e).toBeLessThan(2e-2);
  });

  for (const [rows, D] of [
    [3, 1],
    [2, 4097],
    [2, 300_003],
  ] as const) {
    it(`forward and backward match float64 at [${rows}, ${D}]`, async () => {
      const xd = randn(rows * D, 3 + D, 8);
      const gd = randn(rows * D, 4 + D, 1);
      const x = leaf(xd, [rows, D]);
      const y = scope(() => {
        const out = softmaxRows(x);
        backward(out, tensor(gd, [rows, D]));
        return out;
      });
      const got = await y.read();
      const dx = await x.grad!.read();
      const want = softmaxCpu(xd, rows, D);
      const wantDx = new Float64Array(rows * D);
      for (let r = 0; r < rows; r++) {
        let dot = 0;
        for (let k = 0; k < D; k++) dot += gd[r * D + k]! * want[r * D + k]!;
        for (let k = 0; k < D; k++) wantDx[r * D + k] = want[r * D + k]! * (gd[r * D + k]! - dot);
      }
      // per-element relative error (softmax values span many orders of magnitude)
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / want[i]!);
      expect(worst).toBeLessThan(1e-5);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let k = 0; k < D; k++) s += got[r * D + k]!;
        expect(Math.abs(s - 1)).toBeLessThan(1e-5);
      }
      expect(relErr(dx, wantDx)).toBeLessThan(1e-5);
      for (const t of [y, x.grad!, x]) t.dispose();
    });
  }

  it('keeps the input shape and rejects rank < 2', () => {
    const x = tensor(randn(2 * 3 * 4), [2, 3, 4]);
    const y = softmaxRows(x);
    expect(y.shape).toEqual([2, 3, 4]);
    const v = tensor(new Float32Array(4), [4]);
    expect(() => softmaxRows(v)).toThrow(/softmaxRows: .*\[4\] must have rank ≥ 2/);
    for (const t of [x, y, v]) t.dispose();
  });
});
