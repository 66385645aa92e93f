/**
 * Kept GEMM-layout weight copies (engine/derived.ts, ops/conv.ts packedWeight): made once where the weight
 * cannot change before its next use, reused, and never stale — every way a weight's data changes (a
 * dispatch such as the optimizer's step, a copy, an upload, the tensor being freed) drops its copy.
 */
import { describe, expect, it } from 'vitest';
import {
  Adam,
  conv2d,
  conv2dFused,
  convTranspose2d,
  DerivedCache,
  noGrad,
  runtime,
  scope,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { type Conv, convRef, deconvRef, relErr } from '../helpers/conv-ref.js';
import { gpuAndFlags } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

const flags = gpuAndFlags();

describe('DerivedCache', () => {
  const fake = (byteLength: number) => {
    const d = { byteLength, disposed: 0, dispose: () => void d.disposed++ };
    return d;
  };
  const a = {} as GPUBuffer;
  const b = {} as GPUBuffer;

  it('makes a copy once per source and key, and disposes it when the source is invalidated', () => {
    const cache = new DerivedCache();
    const c1 = fake(8);
    let made = 0;
    const make = () => {
      made++;
      return c1;
    };
    expect(cache.get(a, 'k', make)).toBe(c1);
    expect(cache.get(a, 'k', make)).toBe(c1);
    expect(made).toBe(1);
    const c2 = cache.get(a, 'other', () => fake(4));
    const c3 = cache.get(b, 'k', () => fake(2));
    expect(cache.stats()).toEqual({ copies: 3, bytes: 14 });
    cache.invalidate(a);
    expect(c1.disposed).toBe(1);
    expect(c2.disposed).toBe(1);
    expect(c3.disposed).toBe(0);
    expect(cache.stats()).toEqual({ copies: 1, bytes: 2 });
    cache.invalidate(a); // nothing left for a: no second dispose
    expect(c1.disposed).toBe(1);
    cache.clear();
    expect(c3.disposed).toBe(1);
    expect(cache.stats()).toEqual({ copies: 0, bytes: 0 });
  });
});

const c: Conv = { n: 2, ci: 5, h: 7, w: 6, co: 11, kh: 3, kw: 3, s: 1, p: 1 };
const xData = randn(c.n * c.ci * c.h * c.w, 11);
const w1 = randn(c.co * c.ci * 9, 12, 0.5);
const w2 = randn(c.co * c.ci * 9, 13, 0.5);
const zeros = (n: number) => new Float32Array(n);

function convY(w: Float32Array): Float64Array {
  return convRef(c, xData, w, null, zeros(c.n * c.co * c.h * c.w)).y;
}

/** conv2d(x, w) under noGrad, its values, and the dispatches it recorded. */
async function inferConv(x: Tensor, w: Tensor): Promise<{ y: Float32Array; dispatches: number }> {
  const rt = runtime();
  const before = rt.counters.dispatches;
  const y = noGrad(() => conv2d(x, w, null, { padding: 1 }));
  const dispatches = rt.counters.dispatches - before;
  const values = await y.read();
  y.dispose();
  return { y: values, dispatches };
}

function weight(data: Float32Array, trainable: boolean): Tensor {
  const w = tensor(data, [c.co, c.ci, 3, 3]);
  w.requiresGrad = trainable;
  return w;
}

describe('conv weights kept in GEMM layout (KEEP_PACKED_WEIGHTS)', () => {
  it('inference makes the copy once: the second call records one dispatch fewer, same values', async () => {
    flags.set({ KEEP_PACKED_WEIGHTS: 'stable' });
    const rt = runtime();
    rt.derived.clear();
    const x = tensor(xData, [c.n, c.ci, c.h, c.w]);
    const w = weight(w1, true);
    const first = await inferConv(x, w);
    expect(rt.derived.stats()).toEqual({ copies: 1, bytes: w.byteLength });
    const second = await inferConv(x, w);
    expect(second.dispatches).toBe(first.dispatches - 1);
    expect(second.y).toEqual(first.y);
    expect(relErr(second.y, convY(w1))).toBeLessThan(2e-6);
    x.dispose();
    w.dispose();
  });

  it('freeing the weight frees its copy (no memory left behind)', async () => {
    flags.set({ KEEP_PACKED_WEIGHTS: 'stable' });
    const rt = runtime();
    rt.derived.clear();
    await rt.sync();
    const live0 = rt.pool.snapshot().liveBytes;
    const x = tensor(xData, [c.n, c.ci, c.h, c.w]);
    const w = weight(w1, true);
    await inferConv(x, w);
    expect(rt.derived.stats().copies).toBe(1);
    w.dispose();
    expect(rt.derived.stats().copies).toBe(0);
    x.dispose();
    expect(rt.pool.snapshot().liveBytes).toBe(live0);
  });

  // each way a weight's data can change must drop the copy: a stale copy would give w1's output again
  const writers: [string, (w: Tensor) => Promise<void>][] = [
    ['an upload (runtime().write: loading a checkpoint)', async (w) => runtime().write(w.buffer, w2)],
    [
      'a buffer copy (runtime().copy)',
      async (w) => {
        const src = tensor(w2, w.shape);
        runtime().copy(src.buffer, 0, w.buffer, 0, w.byteLength);
        src.dispose();
      },
    ],
  ];
  for (const [name, write] of writers)
    it(`${name} drops the copy; the next call reads the new weights`, async () => {
      flags.set({ KEEP_PACKED_WEIGHTS: 'stable' });
      const rt = runtime();
      const x = tensor(xData, [c.n, c.ci, c.h, c.w]);
      const w = weight(w1, true);
      expect(relErr((await inferConv(x, w)).y, convY(w1))).toBeLessThan(2e-6);
      await write(w);
      expect(rt.derived.stats().copies).toBe(0);
      expect(relErr((await inferConv(x, w)).y, convY(w2))).toBeLessThan(2e-6);
      x.dispose();
      w.dispose();
    });

  it('an optimizer step (a dispatch writing the weight) between evaluations drops the copy', async () => {
    flags.set({ KEEP_PACKED_WEIGHTS: 'stable' });
    const rt = runtime();
    rt.derived.clear();
    const x = tensor(xData, [c.n, c.ci, c.h, c.w]);
    const w = weight(w1, true);
    await inferConv(x, w); // an evaluation: the copy is kept
    expect(rt.derived.stats().copies).toBe(1);
    const adam = new Adam([w], { lr: 0.1 });
    w.grad = tensor(randn(w.size, 14), w.shape);
    adam.step();
    expect(rt.derived.stats().copies).toBe(0);
    const stepped = await w.read();
    expect(relErr(stepped, w1)).toBeGreaterThan(1e-2); // the step did change w
    expect(relErr((await inferConv(x, w)).y, convY(stepped))).toBeLessThan(2e-6);
    w.grad.dispose();
    w.grad = null;
    adam.dispose();
    x.dispose();
    w.dispose();
  });

  it('training keeps no copy of a trainable weight; a frozen one is kept with gradients on', async () => {
    flags.set({ KEEP_PACKED_WEIGHTS: 'stable' });
    const rt = runtime();
    rt.derived.clear();
    const x = tensor(xData, [c.n, c.ci, c.h, c.w]);
    x.requiresGrad = true;
    const trainable = weight(w1, true);
    scope(() => conv2d(x, trainable, null, { padding: 1 }).dispose());
    expect(rt.derived.stats().copies).toBe(0);
    const frozen = weight(w1, false);
    scope(() => conv2d(x, frozen, null, { padding: 1 }).dispose());
    expect(rt.derived.stats().copies).toBe(1);
    for (const t of [x, trainable, frozen]) t.dispose();
    expect(rt.derived.stats().copies).toBe(0);
  });

  it("'frozen' keeps only weights without a gradient, 'off' none", async () => {
    const rt = runtime();
    rt.derived.clear();
    const x = tensor(xData, [c.n, c.ci, c.h, c.w]);
    const trainable = weight(w1, true);
    const frozen = weight(w2, false);
    flags.set({ KEEP_PACKED_WEIGHTS: 'frozen' });
    await inferConv(x, trainable);
    expect(rt.derived.stats().copies).toBe(0);
    expect(relErr((await inferConv(x, frozen)).y, convY(w2))).toBeLessThan(2e-6);
    expect(rt.derived.stats().copies).toBe(1);
    frozen.dispose();
    const frozen2 = weight(w2, false);
    flags.set({ KEEP_PACKED_WEIGHTS: 'off' });
    expect(relErr((await inferConv(x, frozen2)).y, convY(w2))).toBeLessThan(2e-6);
    expect(rt.derived.stats().copies).toBe(0);
    for (const t of [x, trainable, frozen2]) t.dispose();
  });

  it('conv2dFused keeps its copy too; convTranspose2d needs none (its GEMM reads the weight as it is)', async () => {
    flags.set({ KEEP_PACKED_WEIGHTS: 'stable' });
    const rt = runtime();
    rt.derived.clear();
    const x = tensor(xData, [c.n, c.ci, c.h, c.w]);
    const w = weight(w1, true);
    for (let i = 0; i < 2; i++) {
      const y = noGrad(() => conv2dFused(x, w, null, { padding: 1 }, { relu: true }));
      const want = convY(w1).map((v) => Math.max(v, 0));
      expect(relErr(await y.read(), want)).toBeLessThan(2e-6);
      y.dispose();
    }
    expect(rt.derived.stats().copies).toBe(1);
    // transposed conv k2 s2: x [2, 5, 3, 4], weight [5, 6, 2, 2]
    const [n, ci, h, wd, co] = [2, 5, 3, 4, 6];
    const dx = randn(n * ci * h * wd, 21);
    const dwData = randn(ci * co * 4, 22, 0.5);
    const xt = tensor(dx, [n, ci, h, wd]);
    const dw = tensor(dwData, [ci, co, 2, 2]);
    dw.requiresGrad = true;
    const ref = deconvRef(n, ci, h, wd, co, dx, dwData, zeros(n * co * 4 * h * wd)).y;
    const y = noGrad(() => convTranspose2d(xt, dw));
    expect(relErr(await y.read(), ref)).toBeLessThan(2e-6);
    y.dispose();
    expect(rt.derived.stats().copies).toBe(1);
    for (const t of [x, w, xt, dw]) t.dispose();
    expect(rt.derived.stats().copies).toBe(0);
  });
});
