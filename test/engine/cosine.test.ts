/**
 * Reductions, cosine similarities and the RD++ cosine losses against float64 CPU references on odd
 * shapes (rows not a multiple of the 256-wide workgroups or of the 2,048-element chunks, multi-pass
 * rows of ~300k values, a row long enough for the grid-stride loop), gradient checks for every op with a
 * backward, gradients only where required, no leaks, and the error messages.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  add,
  backward,
  cosineEmbeddingLoss,
  cosineMap,
  cosineReconLoss,
  cosineRows,
  kdLoss,
  max,
  maxRows,
  mean,
  noGrad,
  runtime,
  scope,
  sum,
  sumRows,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { partialsOf, targetWorkgroups } from '../../src/shaders/reduce.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

// ---- float64 references ----

/** max |got − want| / max(|want|, floor) over all entries */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>, floor = 1e-30): number {
  expect(got.length).toBe(want.length);
  let d = 0;
  let s = floor;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got[i]!)) return Number.POSITIVE_INFINITY;
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    s = Math.max(s, Math.abs(want[i]!));
  }
  return d / s;
}

function rowsRef(x: Float32Array, rows: number, f: (row: Float32Array) => number): number[] {
  const d = x.length / rows;
  return Array.from({ length: rows }, (_, r) => f(x.subarray(r * d, (r + 1) * d)));
}
const sum64 = (v: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s;
};
const max64 = (v: ArrayLike<number>) => {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < v.length; i++) m = Math.max(m, v[i]!);
  return m;
};

interface CosRef {
  cos: number[];
  /** d cos_i / d a, d cos_i / d b, each scaled by the per-cosine upstream gradient gr[i] */
  da: Float64Array;
  db: Float64Array;
}

/**
 * Cosines of the vectors a[idx(i, k)], b[idx(i, k)], k < len, with PyTorch's eps forms, and their
 * gradients weighted by gr(i, cos).
 */
function cosRef(
  a: Float32Array,
  b: Float32Array,
  count: number,
  len: number,
  idx: (i: number, k: number) => number,
  form: 'torch' | 'embed',
  gr: (i: number, c: number) => number,
): CosRef {
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  const cos: number[] = [];
  for (let i = 0; i < count; i++) {
    let d = 0;
    let aa = 0;
    let bb = 0;
    for (let k = 0; k < len; k++) {
      const e = idx(i, k);
      d += a[e]! * b[e]!;
      aa += a[e]! * a[e]!;
      bb += b[e]! * b[e]!;
    }
    let c: number;
    let al: number;
    let ba: number;
    let bb2: number;
    const g = (cc: number) => gr(i, cc);
    if (form === 'torch') {
      const na = Math.max(Math.sqrt(aa), 1e-8);
      const nb = Math.max(Math.sqrt(bb), 1e-8);
      c = d / (na * nb);
      al = g(c) / (na * nb);
      ba = Math.sqrt(aa) >= 1e-8 ? (-g(c) * c) / (na * na) : 0;
      bb2 = Math.sqrt(bb) >= 1e-8 ? (-g(c) * c) / (nb * nb) : 0;
    } else {
      const ea = aa + 1e-12;
      const eb = bb + 1e-12;
      c = d / Math.sqrt(ea * eb);
      al = g(c) / Math.sqrt(ea * eb);
      ba = (-g(c) * c) / ea;
      bb2 = (-g(c) * c) / eb;
    }
    cos.push(c);
    for (let k = 0; k < len; k++) {
      const e = idx(i, k);
      da[e] = al * b[e]! + ba * a[e]!;
      db[e] = al * a[e]! + bb2 * b[e]!;
    }
  }
  return { cos, da, db };
}

/** rows layout: vector i = row i of [count, len] */
const rowIdx = (len: number) => (i: number, k: number) => i * len + k;
/** map layout [B, C, HW]: vector q = b·HW + p over channels k */
const mapIdx = (C: number, HW: number) => (q: number, k: number) => {
  const bi = Math.floor(q / HW);
  return (bi * C + k) * HW + (q % HW);
};

/** b = mix·a + (1 − mix)·noise: cosines spread over (0, 1) instead of ~0 for long random vectors */
function correlated(a: Float32Array, seed: number, mix: number): Float32Array {
  const n = randn(a.length, seed);
  return a.map((v, i) => mix * v + (1 - mix) * n[i]!);
}

/** Run f with gradients for every input; return the output values and the input gradients. */
async function withGrads(
  f: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[]; grad?: boolean }[],
  seed?: Float32Array,
): Promise<{ y: Float32Array; grads: (Float32Array | null)[] }> {
  const xs = inputs.map((x) => {
    const t = tensor(x.data, x.shape);
    t.requiresGrad = x.grad ?? true;
    return t;
  });
  const y = scope(() => {
    const out = f(...xs);
    backward(out, seed ? tensor(seed, out.shape) : undefined);
    return out;
  });
  const yv = await y.read();
  y.dispose();
  const grads: (Float32Array | null)[] = [];
  for (const x of xs) {
    grads.push(x.grad ? await x.grad.read() : null);
    x.grad?.dispose();
    x.dispose();
  }
  return { y: yv, grads };
}

async function forward(f: (...xs: Tensor[]) => Tensor, inputs: { data: Float32Array; shape: number[] }[]) {
  const y = noGrad(() => scope(() => f(...inputs.map((x) => tensor(x.data, x.shape)))));
  const v = await y.read();
  y.dispose();
  return v;
}

// ---- reductions ----

describe('reductions against float64', () => {
  // 1 and 31: one invocation per row; 33: one chunk; 2049: two chunks; 300,001: two passes;
  // 4,500,001: more chunks than pass-1 workgroups (grid-stride loop)
  for (const n of [1, 31, 33, 2049, 300_001, 4_500_001]) {
    it(`sum, mean, max of ${n} values`, async () => {
      // offset 1: a naive float32 running sum of 4.5M values ≈ 1 would be off by ~1e-3
      const x = randn(n, n).map((v) => v + 1);
      const t = tensor(x, [n]);
      const [s, m, mx] = noGrad(() => [sum(t), mean(t), max(t)]);
      expect(s.shape).toEqual([1]);
      const want = sum64(x);
      expect(Math.abs((await s.item()) - want) / want).toBeLessThan(2e-6);
      expect(Math.abs((await m.item()) - want / n) / (want / n)).toBeLessThan(2e-6);
      expect(await mx.item()).toBe(max64(x));
      for (const y of [t, s, m, mx]) y.dispose();
    });
  }

  it('max of all-negative values, largest at the very end', async () => {
    const n = 5000;
    const x = randn(n, 3).map((v) => v - 5);
    x[n - 1] = -0.5;
    expect(await forward(max, [{ data: x, shape: [n] }])).toEqual(Float32Array.of(-0.5));
  });

  const rowShapes: number[][] = [
    [3, 5],
    [4, 37],
    [5, 4099],
    [2, 3, 50_001],
    [7, 1],
  ];
  for (const shape of rowShapes) {
    it(`sumRows and maxRows of [${shape.join(', ')}]`, async () => {
      const n = shape.reduce((p, q) => p * q, 1);
      const x = randn(n, n + 11).map((v) => v - 2);
      const rows = shape[0]!;
      const s = await forward(sumRows, [{ data: x, shape }]);
      const m = await forward(maxRows, [{ data: x, shape }]);
      expect(s.length).toBe(rows);
      expect(relErr(s, rowsRef(x, rows, sum64))).toBeLessThan(2e-6);
      expect(Array.from(m)).toEqual(rowsRef(x, rows, max64));
    });
  }

  it('sumRows over more rows than one grid dimension holds (70,000 rows)', async () => {
    const rows = 70_000;
    const d = 40;
    const x = randn(rows * d, 5);
    const s = await forward(sumRows, [{ data: x, shape: [rows, d] }]);
    expect(relErr(s, rowsRef(x, rows, sum64))).toBeLessThan(1e-5);
  });
});

describe('reductions: gradients', () => {
  const x = { data: randn(3 * 41, 2), shape: [3, 41] };
  it('sum', async () => {
    for (const e of (await gradcheck((a) => sum(a), [x], { h: 1e-3 })).errors) expect(e).toBeLessThan(1e-2);
  });
  it('mean', async () => {
    for (const e of (await gradcheck((a) => mean(a), [x], { h: 1e-3 })).errors) expect(e).toBeLessThan(1e-2);
  });
  it('sumRows', async () => {
    for (const e of (await gradcheck((a) => sumRows(a), [x], { h: 1e-3 })).errors)
      expect(e).toBeLessThan(1e-2);
  });
  it('sumRows backward broadcasts each row gradient exactly', async () => {
    const g = Float32Array.of(2, -3, 0.5);
    const { grads } = await withGrads((a) => sumRows(a), [x], g);
    expect(Array.from(grads[0]!)).toEqual(Array.from({ length: 123 }, (_, i) => g[Math.floor(i / 41)]!));
  });
  it('mean backward is 1/n everywhere', async () => {
    const { grads } = await withGrads((a) => mean(a), [x]);
    for (const v of grads[0]!) expect(v).toBeCloseTo(1 / 123, 9);
  });
});

// ---- cosines ----

describe('cosineRows against float64', () => {
  // [shape, mix, gradient tolerance]. Near-parallel vectors (mix 0.999, 1 − cos ≈ 1e-6): the gradient is
  // the small difference of two O(1) terms, b/(‖a‖‖b‖) − c·a/‖a‖², so float32 (PyTorch's included) loses
  // ~eps / sin θ of it; there the tolerance is relative to the terms' size instead.
  const shapes: [number[], number, number][] = [
    [[5, 7], 0.5, 1e-5],
    [[3, 1000], 0.3, 1e-5],
    [[2, 3, 5, 7], 0.7, 1e-5],
    [[2, 300_001], 0.9, 1e-5],
    [[3, 4100], 0.999, 1e-3],
  ];
  for (const [shape, mix, gtol] of shapes) {
    it(`[${shape.join(', ')}], forward and both gradients`, async () => {
      const n = shape.reduce((p, q) => p * q, 1);
      const B = shape[0]!;
      const D = n / B;
      const a = randn(n, n);
      const b = correlated(a, n + 1, mix);
      const g = randn(B, 9);
      const ref = cosRef(a, b, B, D, rowIdx(D), 'torch', (i) => g[i]!);
      const { y, grads } = await withGrads(
        cosineRows,
        [
          { data: a, shape },
          { data: b, shape },
        ],
        g,
      );
      expect(y.length).toBe(B);
      expect(relErr(y, ref.cos)).toBeLessThan(1e-6);
      expect(relErr(grads[0]!, ref.da)).toBeLessThan(gtol);
      expect(relErr(grads[1]!, ref.db)).toBeLessThan(gtol);
    });
  }

  it('a zero row gives cosine 0 and finite gradients (eps clamp)', async () => {
    const a = randn(2 * 9, 4);
    a.fill(0, 0, 9);
    const b = randn(2 * 9, 5);
    const ref = cosRef(a, b, 2, 9, rowIdx(9), 'torch', () => 1);
    const { y, grads } = await withGrads(
      cosineRows,
      [
        { data: a, shape: [2, 9] },
        { data: b, shape: [2, 9] },
      ],
      Float32Array.of(1, 1),
    );
    expect(y[0]).toBe(0);
    expect(relErr(y, ref.cos)).toBeLessThan(1e-6);
    expect(relErr(grads[0]!, ref.da)).toBeLessThan(1e-5);
    expect(relErr(grads[1]!, ref.db)).toBeLessThan(1e-5);
  });

  it('cosineRows(x, x) = 1 with zero gradient', async () => {
    const x = randn(3 * 50, 6);
    const { y, grads } = await withGrads(
      (t) => cosineRows(t, t),
      [{ data: x, shape: [3, 50] }],
      Float32Array.of(1, 2, 3),
    );
    for (const v of y) expect(v).toBeCloseTo(1, 6);
    for (const v of grads[0]!) expect(Math.abs(v)).toBeLessThan(1e-5);
  });
});

describe('cosineMap against float64', () => {
  // S (channel slices per pixel) = 1 for C = 1, 4 for C = 5/6, 16 for C = 33/64 with few pixels
  const shapes = [
    [2, 5, 3, 7],
    [1, 33, 9, 11],
    [3, 1, 4, 4],
    [2, 64, 3, 3],
    [2, 6, 10],
    [1, 6, 70, 70],
  ];
  for (const shape of shapes) {
    it(`[${shape.join(', ')}], forward and both gradients`, async () => {
      const n = shape.reduce((p, q) => p * q, 1);
      const B = shape[0]!;
      const C = shape[1]!;
      const HW = n / (B * C);
      const a = randn(n, n + 3);
      const b = correlated(a, n + 4, 0.6);
      const g = randn(B * HW, 10);
      const ref = cosRef(a, b, B * HW, C, mapIdx(C, HW), 'torch', (i) => g[i]!);
      const { y, grads } = await withGrads(
        cosineMap,
        [
          { data: a, shape },
          { data: b, shape },
        ],
        g,
      );
      expect(y.length).toBe(B * HW);
      expect(relErr(y, ref.cos)).toBeLessThan(1e-6);
      // C = 1: cos = ±1 is constant and the exact gradient 0 is the difference of two terms of size
      // |g|/|a|; compare relative to those terms
      const floor = C === 1 ? max64(Array.from(a, (v) => 1 / Math.abs(v))) : 1e-30;
      expect(relErr(grads[0]!, ref.da, floor)).toBeLessThan(1e-5);
      expect(
        relErr(
          grads[1]!,
          ref.db,
          Math.max(floor, C === 1 ? max64(Array.from(b, (v) => 1 / Math.abs(v))) : 0),
        ),
      ).toBeLessThan(1e-5);
    });
  }

  it('output shape drops the channel dimension', () => {
    const a = tensor(randn(2 * 3 * 4 * 5), [2, 3, 4, 5]);
    const y = noGrad(() => cosineMap(a, a));
    expect(y.shape).toEqual([2, 4, 5]);
    a.dispose();
    y.dispose();
  });
});

describe('cosine ops: gradient checks', () => {
  const a4 = { data: randn(2 * 5 * 3 * 3, 21), shape: [2, 5, 3, 3] };
  const b4 = { data: correlated(a4.data, 22, 0.5), shape: [2, 5, 3, 3] };
  const opts = { h: 1e-3, samples: 16 };
  const ok = (errors: number[]) => {
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  };
  it('cosineMap', async () => ok((await gradcheck(cosineMap, [a4, b4], opts)).errors));
  it('cosineRows', async () => ok((await gradcheck(cosineRows, [a4, b4], opts)).errors));
  it('cosineReconLoss', async () => ok((await gradcheck(cosineReconLoss, [a4, b4], opts)).errors));
  it('cosineEmbeddingLoss (rows above and below the margin)', async () => {
    const a = randn(4 * 30, 23);
    const b = a.map((v, i) => {
      const mix = [0.95, 0.7, 0.2, 0][Math.floor(i / 30)]!;
      return mix * v + (1 - mix) * randn(120, 24)[i]!;
    });
    ok(
      (
        await gradcheck(
          (x, y) => cosineEmbeddingLoss(x!, y!, 0.5),
          [
            { data: a, shape: [4, 30] },
            { data: b, shape: [4, 30] },
          ],
          opts,
        )
      ).errors,
    );
  });
  it('kdLoss over two pairs of different sizes', async () => {
    const t1 = { data: randn(2 * 3 * 4 * 4, 25), shape: [2, 3, 4, 4] };
    const s1 = { data: correlated(t1.data, 26, 0.7), shape: [2, 3, 4, 4] };
    ok((await gradcheck((p, q, r, s) => kdLoss([p!, r!], [q!, s!]), [a4, b4, t1, s1], opts)).errors);
  });
});

// ---- losses ----

describe('losses against float64', () => {
  it('kdLoss over three scales (one of ~300k values per sample), gradient only for the student', async () => {
    const shapes = [
      [2, 4, 75, 1000],
      [2, 8, 9, 7],
      [2, 16, 2, 2],
    ];
    const ts = shapes.map((s, k) => ({
      data: randn(
        s.reduce((p, q) => p * q, 1),
        30 + k,
      ),
      shape: s,
    }));
    const ss = ts.map((t, k) => ({ data: correlated(t.data, 40 + k, 0.9), shape: t.shape, grad: true }));
    let want = 0;
    const refs = ts.map((t, k) => {
      const D = t.data.length / 2;
      const r = cosRef(t.data, ss[k]!.data, 2, D, rowIdx(D), 'torch', () => -1 / 2);
      for (const c of r.cos) want += (1 - c) / 2;
      return r;
    });
    const { y, grads } = await withGrads(
      (t0, t1, t2, s0, s1, s2) => kdLoss([t0!, t1!, t2!], [s0!, s1!, s2!]),
      [...ts.map((t) => ({ ...t, grad: false })), ...ss],
    );
    expect(y.length).toBe(1);
    expect(Math.abs(y[0]! - want) / want).toBeLessThan(1e-5);
    expect(grads.slice(0, 3)).toEqual([null, null, null]);
    for (let k = 0; k < 3; k++) expect(relErr(grads[3 + k]!, refs[k]!.db)).toBeLessThan(1e-5);
  });

  it('cosineEmbeddingLoss: only rows with cos > margin count, both gradients', async () => {
    const B = 5;
    const D = 2500;
    const a = randn(B * D, 50);
    const noise = randn(B * D, 51);
    const mixes = [0.95, 0.8, 0.6, 0.3, 0];
    const b = a.map((v, i) => {
      const m = mixes[Math.floor(i / D)]!;
      return m * v + (1 - m) * noise[i]!;
    });
    for (const margin of [0.5, 0.9]) {
      const ref = cosRef(a, b, B, D, rowIdx(D), 'embed', (_, c) => (c > margin ? 1 / B : 0));
      const want = ref.cos.reduce((s, c) => s + Math.max(0, c - margin), 0) / B;
      const { y, grads } = await withGrads(
        (x, z) => cosineEmbeddingLoss(x!, z!, margin),
        [
          { data: a, shape: [B, D] },
          { data: b, shape: [B, D] },
        ],
      );
      expect(Math.abs(y[0]! - want) / want).toBeLessThan(1e-5);
      expect(relErr(grads[0]!, ref.da)).toBeLessThan(1e-5);
      expect(relErr(grads[1]!, ref.db)).toBeLessThan(1e-5);
    }
  });

  it('cosineEmbeddingLoss is 0 with zero gradients when every cosine is below the margin', async () => {
    const a = randn(3 * 100, 52);
    const b = randn(3 * 100, 53);
    const { y, grads } = await withGrads(
      (x, z) => cosineEmbeddingLoss(x!, z!),
      [
        { data: a, shape: [3, 100] },
        { data: b, shape: [3, 100] },
      ],
    );
    expect(y[0]).toBe(0);
    for (const g of grads) for (const v of g!) expect(v === 0).toBe(true);
  });

  it('cosineReconLoss over more pixels than one chunk (two-pass loss reduction)', async () => {
    const shape = [2, 3, 40, 41];
    const n = 2 * 3 * 40 * 41;
    const P = 2 * 40 * 41;
    const a = randn(n, 60);
    const b = correlated(a, 61, 0.5);
    const ref = cosRef(a, b, P, 3, mapIdx(3, 40 * 41), 'torch', () => -1 / P);
    const want = ref.cos.reduce((s, c) => s + (1 - c), 0) / P;
    const { y, grads } = await withGrads(cosineReconLoss, [
      { data: a, shape },
      { data: b, shape },
    ]);
    expect(Math.abs(y[0]! - want) / want).toBeLessThan(1e-5);
    expect(relErr(grads[0]!, ref.da)).toBeLessThan(1e-5);
    expect(relErr(grads[1]!, ref.db)).toBeLessThan(1e-5);
  });
});

describe('ownership', () => {
  it('forward + backward of every op leaves no live buffer behind', async () => {
    const pool = runtime().pool;
    await runtime().sync();
    const before = pool.snapshot().liveBytes;
    const a = tensor(randn(2 * 6 * 5 * 5, 70), [2, 6, 5, 5]);
    const b = tensor(randn(2 * 6 * 5 * 5, 71), [2, 6, 5, 5]);
    const big = tensor(randn(2 * 5000, 72), [2, 5000]);
    const big2 = tensor(randn(2 * 5000, 73), [2, 5000]);
    for (const t of [a, b, big, big2]) t.requiresGrad = true;
    scope(() => {
      const loss = [
        kdLoss([a, big], [b, big2]),
        cosineEmbeddingLoss(big, big2),
        cosineReconLoss(a, b),
        sum(cosineMap(a, b)),
        mean(cosineRows(big, big2)),
        sum(sumRows(big)),
      ].reduce((p, q) => add(p, q));
      backward(loss);
      noGrad(() => [max(big), maxRows(big), sum(big)]);
    });
    for (const t of [a, b, big, big2]) {
      expect(t.grad).not.toBeNull();
      t.grad?.dispose();
      t.dispose();
    }
    await runtime().sync();
    expect(pool.snapshot().liveBytes).toBe(before);
  });
});

describe('gradients only where required', () => {
  const shape = [2, 7, 3, 5];
  const n = 2 * 7 * 3 * 5;
  const a = randn(n, 80);
  const b = correlated(a, 81, 0.4);
  for (const [name, f, count, len, idx] of [
    ['cosineRows', cosineRows, 2, n / 2, rowIdx(n / 2)],
    ['cosineMap', cosineMap, 30, 7, mapIdx(7, 15)],
  ] as const) {
    for (const which of [0, 1]) {
      it(`${name} with only ${which === 0 ? 'a' : 'b'} requiring a gradient`, async () => {
        const g = randn(count, 82);
        const ref = cosRef(a, b, count, len, idx, 'torch', (i) => g[i]!);
        const { grads } = await withGrads(
          f,
          [
            { data: a, shape, grad: which === 0 },
            { data: b, shape, grad: which === 1 },
          ],
          g,
        );
        expect(grads[1 - which]).toBeNull();
        expect(relErr(grads[which]!, which === 0 ? ref.da : ref.db)).toBeLessThan(1e-5);
      });
    }
  }

  it('no graph is recorded under noGrad or without inputs that require gradients', () => {
    const x = tensor(a, shape);
    const z = tensor(b, shape);
    const outs = [cosineRows(x, z), cosineMap(x, z), kdLoss([x], [z]), cosineReconLoss(x, z), sum(x)];
    x.requiresGrad = true;
    outs.push(...noGrad(() => [cosineEmbeddingLoss(x, z), mean(x), sumRows(x)]));
    for (const o of outs) {
      expect(o.requiresGrad).toBe(false);
      expect(o.node).toBeNull();
      o.dispose();
    }
    x.dispose();
    z.dispose();
  });
});

describe('errors', () => {
  const t = (shape: number[]) => tensor(new Float32Array(shape.reduce((p, q) => p * q, 1)), shape);
  const cases: [string, () => unknown, RegExp][] = [
    [
      'cosineMap shape mismatch',
      () => cosineMap(t([2, 3, 4, 4]), t([2, 3, 4, 5])),
      /cosineMap: shapes differ: #\d+\[2, 3, 4, 4\] vs #\d+\[2, 3, 4, 5\]/,
    ],
    [
      'cosineMap rank 1',
      () => cosineMap(t([5]), t([5])),
      /cosineMap: #\d+\[5\] has rank 1; expected \[B, C, H, W\]/,
    ],
    ['cosineRows shape mismatch', () => cosineRows(t([2, 10]), t([2, 11])), /cosineRows: shapes differ/],
    [
      'cosineRows same size, other shape',
      () => cosineRows(t([2, 10]), t([4, 5])),
      /cosineRows: shapes differ/,
    ],
    ['cosineRows rank 1', () => cosineRows(t([10]), t([10])), /cosineRows: .* has rank 1/],
    ['cosineRows empty', () => cosineRows(t([0, 3]), t([0, 3])), /cosineRows: .* has no elements/],
    [
      'kdLoss lists of different lengths',
      () => kdLoss([t([2, 3])], []),
      /kdLoss: expected two equally long, non-empty lists.*1 teacher and 0 student/,
    ],
    ['kdLoss empty lists', () => kdLoss([], []), /kdLoss: expected two equally long, non-empty lists/],
    [
      'kdLoss pair shape mismatch',
      () => kdLoss([t([2, 3]), t([2, 4])], [t([2, 3]), t([2, 5])]),
      /kdLoss \(pair 1\): shapes differ/,
    ],
    [
      'kdLoss batch mismatch',
      () => kdLoss([t([2, 3]), t([3, 4])], [t([2, 3]), t([3, 4])]),
      /kdLoss: pair 1 has batch 3 .* but pair 0 has 2/,
    ],
    [
      'cosineEmbeddingLoss margin',
      () => cosineEmbeddingLoss(t([2, 3]), t([2, 3]), Number.NaN),
      /cosineEmbeddingLoss: margin NaN/,
    ],
    [
      'cosineEmbeddingLoss shapes',
      () => cosineEmbeddingLoss(t([2, 3]), t([3, 2])),
      /cosineEmbeddingLoss: shapes differ/,
    ],
    [
      'cosineReconLoss shapes',
      () => cosineReconLoss(t([1, 2, 3, 3]), t([1, 3, 3, 3])),
      /cosineReconLoss: shapes differ/,
    ],
    ['sum of nothing', () => sum(t([0])), /sum: .* has no elements/],
    ['mean of nothing', () => mean(t([4, 0])), /mean: .* has no elements/],
    ['max of nothing', () => max(t([0, 2])), /max: .* has no elements/],
    ['sumRows of a scalar', () => sumRows(t([])), /sumRows: .* has rank 0/],
    ['maxRows of nothing', () => maxRows(t([0, 5])), /maxRows: .* has no elements/],
  ];
  for (const [name, f, msg] of cases) {
    it(name, () => {
      scope(() => {
        expect(f).toThrow(msg);
      });
    });
  }
});

describe('dispatch geometry of a discrete GPU (many pass-1 workgroups), run here', () => {
  // On a CPU adapter few long workgroups are used; make the engine size its grids as on a GPU for these
  // cases so that the same kernels are also checked with up to 2,048 partials per row.
  const withGpuGrids = async (f: () => Promise<void>) => {
    const report = runtime().gpu.report;
    const saved = { fb: report.isFallbackAdapter, arch: report.architecture };
    report.isFallbackAdapter = false;
    report.architecture = 'test-gpu';
    try {
      await f();
    } finally {
      report.isFallbackAdapter = saved.fb;
      report.architecture = saved.arch;
    }
  };

  it('targetWorkgroups and partialsOf', () => {
    expect(targetWorkgroups({ isFallbackAdapter: true, architecture: 'x' })).toBe(64);
    expect(targetWorkgroups({ isFallbackAdapter: false, architecture: 'swiftshader' })).toBe(64);
    expect(targetWorkgroups({ isFallbackAdapter: false, architecture: 'hopper' })).toBe(4096);
    expect(partialsOf(16 * 1024 * 1024, 1, 4096)).toBe(2048);
    expect(partialsOf(1 << 20, 16, 4096)).toBe(256);
    expect(partialsOf(100, 16, 4096)).toBe(1);
    expect(partialsOf(1 << 20, 100_000, 4096)).toBe(1);
  });

  it('sum of 4,500,001 values and sumRows of [3, 300,001]', async () => {
    await withGpuGrids(async () => {
      const x = randn(4_500_001, 90).map((v) => v + 1);
      const s = await forward(sum, [{ data: x, shape: [x.length] }]);
      expect(Math.abs(s[0]! - sum64(x)) / sum64(x)).toBeLessThan(2e-6);
      const y = x.subarray(0, 3 * 300_001);
      const r = await forward(sumRows, [{ data: y, shape: [3, 300_001] }]);
      expect(relErr(r, rowsRef(y, 3, sum64))).toBeLessThan(2e-6);
    });
  });

  it('cosineRows [2, 300,001] and cosineReconLoss over 24,000 pixels', async () => {
    await withGpuGrids(async () => {
      const a = randn(600_002, 91);
      const b = correlated(a, 92, 0.8);
      const ref = cosRef(a, b, 2, 300_001, rowIdx(300_001), 'torch', () => 1);
      const y = await forward(cosineRows, [
        { data: a, shape: [2, 300_001] },
        { data: b, shape: [2, 300_001] },
      ]);
      expect(relErr(y, ref.cos)).toBeLessThan(1e-6);
      const shape = [2, 25, 100, 120];
      const aa = a.subarray(0, 600_000);
      const bb = b.subarray(0, 600_000);
      const P = 24_000;
      const cos = cosRef(aa, bb, P, 25, mapIdx(25, 12_000), 'torch', () => 1).cos;
      const want = cos.reduce((s, c) => s + (1 - c), 0) / P;
      const l = await forward(cosineReconLoss, [
        { data: aa, shape },
        { data: bb, shape },
      ]);
      expect(Math.abs(l[0]! - want) / want).toBeLessThan(1e-5);
    });
  });
});
