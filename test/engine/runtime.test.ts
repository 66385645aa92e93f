/**
 * The runtime under the ops: the pool's reuse rules (pending buffers go to GPU producers, never to
 * uploads), its reserved-bytes cap and trim, bind groups cached by buffers (and dropped with them),
 * submits every DISPATCHES_PER_SUBMIT dispatches, `release` in both autograd modes, and the timestamp
 * profiler.
 */
import { describe, expect, it } from 'vitest';
import {
  add,
  backward,
  conv2d,
  DispatchProfiler,
  empty,
  leakyRelu,
  mean,
  noGrad,
  param,
  release,
  runtime,
  scale,
  scope,
  sizeClass,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { gpuAndFlags } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

const flags = gpuAndFlags();

describe('buffer pool', () => {
  it('hands a buffer released during recording to a later GPU producer, but never to an upload', async () => {
    const rt = runtime();
    await rt.sync();
    const a = tensor(randn(1000, 1), [1000]);
    const b = scale(a, 2); // records a dispatch reading a
    const bufA = a.buffer;
    a.dispose(); // a is still read by the recorded, unsubmitted dispatch: pending
    expect(rt.recording).toBe(true);
    const up = tensor(randn(1000, 2), [1000]); // an upload (queue.writeBuffer) must not get a's buffer
    expect(up.buffer).not.toBe(bufA);
    const out = empty([1000]); // a GPU producer may: it runs after the read
    expect(out.buffer).toBe(bufA);
    for (const t of [b, up, out]) t.dispose();
    await rt.sync();
  });

  it('gives the same buffers to a repeated step whatever order they were released in', async () => {
    const rt = runtime();
    await rt.sync();
    const sizes = [4096, 4096, 4096, 8192];
    const take = () => sizes.map((n) => empty([n]));
    const first = take();
    const firstBufs = first.map((t) => t.buffer);
    for (const t of [...first].reverse()) t.dispose();
    const second = take();
    expect(second.map((t) => t.buffer)).toEqual(firstBufs);
    for (const t of [second[1]!, second[0]!, second[3]!, second[2]!]) t.dispose();
    const third = take();
    expect(third.map((t) => t.buffer)).toEqual(firstBufs);
    for (const t of third) t.dispose();
  });

  it('keeps its working set by default, evicts least recently used idle buffers under a reserved cap, trims', async () => {
    const rt = runtime();
    await rt.sync();
    rt.pool.trim();
    const base = rt.pool.snapshot();
    const mib = 2 ** 20;
    const ts = [1, 2, 3].map(() => empty([mib / 4])); // 3 × 1 MiB
    for (const t of ts) t.dispose();
    let s = rt.pool.snapshot();
    expect(s.pooledBytes - base.pooledBytes).toBe(3 * mib); // nothing destroyed without a cap
    flags.set({ POOL_MAX_RESERVED_BYTES: s.reservedBytes + mib / 2 });
    const other = empty([(2 * mib) / 4]); // a miss of 2 MiB: two idle 1 MiB buffers must go
    s = rt.pool.snapshot();
    expect(s.destroyedBuffers - base.destroyedBuffers).toBe(2);
    expect(s.reservedBytes).toBeLessThanOrEqual(base.reservedBytes + 3 * mib);
    other.dispose();
    rt.pool.trim();
    expect(rt.pool.snapshot().pooledBytes).toBe(0);
    expect(rt.pool.snapshot().reservedBytes).toBe(rt.pool.snapshot().liveBytes);
  });

  it('size classes waste at most 12.5 %', () => {
    for (const n of [257, 1000, 4097, 123456, 10_000_001]) {
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c / n).toBeLessThanOrEqual(1.125);
    }
  });
});

describe('recording and submitting', () => {
  it('submits every DISPATCHES_PER_SUBMIT dispatches, with the same results', async () => {
    const rt = runtime();
    const x = randn(500, 3);
    const chain = () =>
      scope(() => {
        let h = tensor(x, [500]);
        for (let i = 0; i < 20; i++) h = add(scale(h, 0.5), h);
        return h;
      });
    const ref = chain();
    const want = await ref.read();
    ref.dispose();
    flags.set({ DISPATCHES_PER_SUBMIT: 4 });
    await rt.sync();
    const s0 = rt.counters.submits;
    const y = chain();
    expect(rt.counters.submits - s0).toBeGreaterThanOrEqual(10); // 40 dispatches, 4 per submit
    expect(Array.from(await y.read())).toEqual(Array.from(want));
    y.dispose();
  });

  it('creates no bind group for a repeated step, and drops cached ones whose buffers are destroyed', async () => {
    const rt = runtime();
    const w = param(tensor(randn(4 * 3 * 9, 5, 0.3), [4, 3, 3, 3]));
    const x = randn(2 * 3 * 8 * 8, 6);
    const step = () =>
      scope(() => {
        const y = leakyRelu(conv2d(tensor(x, [2, 3, 8, 8]), w, null, { padding: 1 }), 0.01);
        backward(mean(y));
      });
    step();
    await rt.sync();
    step();
    await rt.sync();
    const g0 = rt.counters.bindGroups;
    dropGrad(w);
    step();
    await rt.sync();
    dropGrad(w);
    const warm = rt.counters.bindGroups - g0;
    step();
    await rt.sync();
    expect(rt.counters.bindGroups - g0 - warm).toBe(0);
    // destroying idle buffers must not leave bind groups naming them in use
    rt.pool.trim();
    dropGrad(w);
    step();
    await rt.sync();
    rt.gpu.check();
    expect(w.grad).not.toBeNull();
    dropGrad(w);
    w.dispose();
  });
});

function dropGrad(p: Tensor): void {
  p.grad?.dispose();
  p.grad = null;
}

describe('release', () => {
  it('under noGrad frees at once', async () => {
    const rt = runtime();
    await rt.sync();
    const live = rt.pool.snapshot().liveBytes;
    noGrad(() => {
      const a = tensor(randn(1000, 1), [1000]);
      release(a);
      expect(a.isDisposed).toBe(true);
    });
    expect(rt.pool.snapshot().liveBytes).toBe(live);
  });

  it('in training keeps what a backward rule reads until it has run, frees the rest at once, and leaves gradients unchanged', async () => {
    const w1 = param(tensor(randn(4 * 3 * 9, 1, 0.3), [4, 3, 3, 3]));
    const w2 = param(tensor(randn(5 * 4 * 9, 2, 0.3), [5, 4, 3, 3]));
    const xData = randn(2 * 3 * 6 * 6, 3);
    const run = async (withRelease: boolean) => {
      let heldDuringBackward = -1;
      scope(() => {
        const c1 = conv2d(tensor(xData, [2, 3, 6, 6]), w1, null, { padding: 1 });
        const h = leakyRelu(c1, 0.1); // reads c1 in backward
        const c2 = conv2d(h, w2, null, { padding: 1 }); // reads h (for w2's gradient)
        const s = add(c2, c2); // add reads nothing
        if (withRelease) {
          release(c1, h, c2);
          expect(c1.isFreed).toBe(false); // saved by leakyRelu
          expect(h.isFreed).toBe(false); // saved by the second conv
          expect(c2.isFreed).toBe(true); // nobody reads it
          expect(() => c2.buffer).toThrow(/released but is read again/);
          heldDuringBackward = c1.savedBy;
        }
        backward(mean(s));
        if (withRelease) {
          expect(c1.isFreed).toBe(true);
          expect(h.isFreed).toBe(true);
        }
      });
      const g = [await w1.grad!.read(), await w2.grad!.read()];
      for (const p of [w1, w2]) {
        p.grad?.dispose();
        p.grad = null;
      }
      return { g, heldDuringBackward };
    };
    const plain = await run(false);
    const released = await run(true);
    expect(released.heldDuringBackward).toBe(1);
    expect(Array.from(released.g[0]!)).toEqual(Array.from(plain.g[0]!));
    expect(Array.from(released.g[1]!)).toEqual(Array.from(plain.g[1]!));
    w1.dispose();
    w2.dispose();
  });
});

describe('profiler', () => {
  it('times every dispatch per program with timestamp queries', async () => {
    const rt = runtime();
    if (!DispatchProfiler.supported(rt.device)) {
      // the adapter has no timestamps: the profile command falls back to wall time (tested there)
      expect(() => new DispatchProfiler(rt.device)).toThrow(/timestamp-query/);
      return;
    }
    const prof = new DispatchProfiler(rt.device);
    await rt.sync();
    rt.profiler = prof;
    try {
      scope(() => {
        const a = tensor(randn(4096, 1), [4096]);
        for (let i = 0; i < 3; i++) scale(a, 2);
        add(a, a);
      });
      await rt.sync();
      await prof.drain();
    } finally {
      rt.profiler = null;
    }
    const byName = new Map(prof.programs().map((p) => [p.name, p]));
    expect(byName.get('map_scale')?.calls).toBe(3);
    expect(byName.get('map_add')?.calls).toBe(1);
    for (const p of prof.programs()) expect(p.gpuMs).toBeGreaterThanOrEqual(0);
    prof.dispose();
  });
});
