/**
 * Adam against a CPU implementation of PyTorch's update (float64), for several steps, with a parameter
 * that is skipped for a while (its own step count); zeroGrad; state()/loadState() round trips.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam, keep, param, runtime, type Tensor, tensor } from '../../src/engine/index.js';
import { expectSameBits } from '../helpers/bits.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

/** PyTorch's Adam (torch.optim.Adam, single tensor, no weight decay) for one parameter, in float64. */
class CpuAdam {
  m: Float64Array;
  v: Float64Array;
  t = 0;
  constructor(
    public p: Float64Array,
    readonly lr: number,
    readonly b1: number,
    readonly b2: number,
    readonly eps: number,
  ) {
    this.m = new Float64Array(p.length);
    this.v = new Float64Array(p.length);
  }
  step(g: Float32Array): void {
    this.t++;
    const stepSize = this.lr / (1 - this.b1 ** this.t);
    const bc2Sqrt = Math.sqrt(1 - this.b2 ** this.t);
    for (let i = 0; i < this.p.length; i++) {
      this.m[i] = this.b1 * this.m[i]! + (1 - this.b1) * g[i]!;
      this.v[i] = this.b2 * this.v[i]! + (1 - this.b2) * g[i]! * g[i]!;
      this.p[i]! -= (stepSize * this.m[i]!) / (Math.sqrt(this.v[i]!) / bc2Sqrt + this.eps);
    }
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function setGrad(p: Tensor, data: Float32Array): void {
  p.grad?.dispose();
  p.grad = keep(tensor(data, p.shape));
}

// more parameters than one multi-tensor dispatch takes (at most 8), of sizes within one workgroup and over many
const SHAPES = [
  [1037],
  [3, 5],
  [2, 3, 4, 4],
  [1],
  [300],
  [7, 7],
  [64],
  [2, 2, 3, 3],
  [513],
  [5],
  [4, 4, 4, 4],
  [9],
];

describe('Adam', () => {
  it('defaults to PyTorch settings (betas 0.9, 0.999; eps 1e-8)', () => {
    const p = param(tensor([1, 2], [2]));
    const opt = new Adam([p], { lr: 0.1 });
    expect(opt.betas).toEqual([0.9, 0.999]);
    expect(opt.eps).toBe(1e-8);
    opt.dispose();
    p.dispose();
  });

  for (const [b1, b2, lr] of [
    [0.5, 0.999, 5e-3],
    [0.9, 0.99, 1e-3],
  ] as const) {
    it(`matches the CPU update over 5 steps (betas ${b1}, ${b2}; lr ${lr}), skipping a parameter`, async () => {
      const init = SHAPES.map((s, k) =>
        randn(
          s.reduce((a, b) => a * b, 1),
          10 + k,
        ),
      );
      const ps = SHAPES.map((s, k) => param(tensor(init[k]!, s), `p${k}`));
      const cpu = init.map((d) => new CpuAdam(Float64Array.from(d), lr, b1, b2, 1e-8));
      const opt = new Adam(ps, { lr, betas: [b1, b2] });
      for (let step = 0; step < 5; step++) {
        ps.forEach((p, k) => {
          // parameter 1 gets no gradient in steps 1 and 2: skipped, its state untouched
          if (k === 1 && (step === 1 || step === 2)) return;
          const g = randn(p.size, 100 * step + k, step === 3 ? 1e-4 : 2); // tiny and large gradients
          setGrad(p, g);
          cpu[k]!.step(g);
        });
        const before = runtime().counters.dispatches;
        opt.step();
        // one dispatch per group of parameters, not one per parameter (four bindings each, beside the
        // step scalars' one)
        const due = step === 1 || step === 2 ? ps.length - 1 : ps.length;
        const perDispatch = Math.min(
          8,
          Math.floor((runtime().gpu.report.limits.maxStorageBuffersPerShaderStage - 1) / 4),
        );
        expect(runtime().counters.dispatches - before).toBe(Math.ceil(due / perDispatch));
        opt.zeroGrad();
        for (let k = 0; k < ps.length; k++)
          expect(maxAbsDiff(await ps[k]!.read(), cpu[k]!.p), `step ${step}, parameter ${k}`).toBeLessThan(
            1e-6,
          );
      }
      const st = opt.state();
      expect(st.step).toEqual(SHAPES.map((_, k) => (k === 1 ? 3 : 5)));
      for (let k = 0; k < ps.length; k++) {
        expect(maxAbsDiff(await st.m[k]!.read(), cpu[k]!.m)).toBeLessThan(1e-6);
        expect(maxAbsDiff(await st.v[k]!.read(), cpu[k]!.v)).toBeLessThan(1e-6);
      }
      opt.dispose();
      for (const p of ps) p.dispose();
    });
  }

  it('stepWith(nextScalars()) then countSteps() is step(), bit for bit, a parameter without a gradient included', async () => {
    const init = SHAPES.map((sh, k) =>
      randn(
        sh.reduce((a, b) => a * b, 1),
        500 + k,
      ),
    );
    const twins = [0, 1].map(() => {
      const ps = SHAPES.map((sh, k) => param(tensor(init[k]!, sh), `p${k}`));
      return { ps, opt: new Adam(ps, { lr: 0.005, betas: [0.5, 0.999] }) };
    });
    const [a, b] = twins as [(typeof twins)[0], (typeof twins)[0]];
    for (let step = 0; step < 4; step++) {
      SHAPES.forEach((_, k) => {
        // parameter 2 has no gradient in step 1: skipped by both, its step count left alone
        if (k === 2 && step === 1) return;
        const g = randn(a.ps[k]!.size, 600 + 10 * step + k);
        setGrad(a.ps[k]!, g);
        setGrad(b.ps[k]!, g);
      });
      a.opt.step();
      const scalars = tensor(b.opt.nextScalars(), [2 * SHAPES.length]);
      expect(b.opt.state().step, 'nextScalars counts nothing').toEqual(
        a.opt.state().step.map((t, k) => (k === 2 && step === 1 ? t : t - 1)),
      );
      b.opt.stepWith(scalars);
      b.opt.countSteps();
      scalars.dispose();
      expect(b.opt.state().step).toEqual(a.opt.state().step);
      for (const o of [a.opt, b.opt]) o.zeroGrad();
      for (let k = 0; k < SHAPES.length; k++) {
        expectSameBits(await b.ps[k]!.read(), await a.ps[k]!.read(), `step ${step}, parameter ${k}`);
        expectSameBits(
          await b.opt.state().v[k]!.read(),
          await a.opt.state().v[k]!.read(),
          `step ${step}, v ${k}`,
        );
      }
    }
    expect(a.opt.state().step[2]).toBe(3);
    const wrong = tensor(new Float32Array(3), [3]);
    expect(() => b.opt.stepWith(wrong)).toThrow(new RegExp(`expected ${2 * SHAPES.length} step scalars`));
    wrong.dispose();
    const lone = param(tensor([1], [1]));
    const fresh = new Adam([lone], { lr: 1 });
    expect(() => fresh.countSteps()).toThrow(/no update was recorded/);
    fresh.dispose();
    lone.dispose();
    for (const t of twins) {
      t.opt.dispose();
      for (const p of t.ps) p.dispose();
    }
  });

  it('leaves a parameter without a gradient untouched, bit for bit', async () => {
    const d = randn(50, 3);
    const a = param(tensor(d, [50]));
    const b = param(tensor(randn(7, 4), [7]));
    const opt = new Adam([a, b], { lr: 0.1 });
    setGrad(b, randn(7, 5));
    opt.step();
    expect(Array.from(await a.read())).toEqual(Array.from(d));
    expect(opt.state().step).toEqual([0, 1]);
    for (const v of await opt.state().m[0]!.read()) expect(v).toBe(0);
    opt.zeroGrad();
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  it('zeroGrad disposes and clears every gradient', () => {
    const ps = [param(tensor(randn(4, 1), [4])), param(tensor(randn(6, 2), [2, 3]))];
    const opt = new Adam(ps, { lr: 0.1 });
    ps.forEach((p, k) => {
      setGrad(p, randn(p.size, k));
    });
    const grads = ps.map((p) => p.grad!);
    opt.zeroGrad();
    for (const p of ps) expect(p.grad).toBeNull();
    for (const g of grads) expect(g.isDisposed).toBe(true);
    opt.zeroGrad(); // twice is fine
    opt.dispose();
    for (const p of ps) p.dispose();
  });

  it('state() / loadState() round trip: a restored optimizer continues exactly like the original', async () => {
    const init = [randn(40, 21), randn(9, 22)];
    const shapes = [[40], [3, 3]];
    const mk = () => shapes.map((s, k) => param(tensor(init[k]!, s)));
    const pa = mk();
    const pb = mk();
    const a = new Adam(pa, { lr: 0.01, betas: [0.5, 0.999] });
    for (let s = 0; s < 3; s++) {
      pa.forEach((p, k) => {
        if (k === 1 && s === 0) return;
        setGrad(p, randn(p.size, 50 + s * 7 + k));
      });
      a.step();
      a.zeroGrad();
    }
    // B gets A's parameters and state: from GPU tensors, and (second optimizer) from CPU arrays
    for (let k = 0; k < 2; k++) runtime().write(pb[k]!.buffer, await pa[k]!.read());
    const b = new Adam(pb, { lr: 0.01, betas: [0.5, 0.999] });
    b.loadState(a.state());
    const st = a.state();
    const c = new Adam(
      shapes.map((s, k) => param(tensor(init[k]!, s))),
      { lr: 0.01, betas: [0.5, 0.999] },
    );
    c.loadState({
      step: st.step,
      m: await Promise.all(st.m.map((t) => t.read())),
      v: await Promise.all(st.v.map((t) => t.read())),
    });
    expect(b.state().step).toEqual([3, 2]);
    expect(c.state().step).toEqual([3, 2]);
    for (let k = 0; k < 2; k++) {
      expect(Array.from(await c.state().m[k]!.read())).toEqual(Array.from(await st.m[k]!.read()));
      expect(Array.from(await c.state().v[k]!.read())).toEqual(Array.from(await st.v[k]!.read()));
    }
    // one more step on A and B with the same gradients: identical parameters
    for (const [opt, ps] of [
      [a, pa],
      [b, pb],
    ] as const) {
      ps.forEach((p, k) => {
        setGrad(p, randn(p.size, 900 + k));
      });
      opt.step();
      opt.zeroGrad();
    }
    for (let k = 0; k < 2; k++)
      expect(Array.from(await pb[k]!.read())).toEqual(Array.from(await pa[k]!.read()));
    // loading its own state is a no-op
    a.loadState(a.state());
    expect(a.state().step).toEqual([4, 3]);
    for (const o of [a, b, c]) {
      for (const p of o.params) p.dispose();
      o.dispose();
    }
  });

  it('does not leak: a step allocates nothing that outlives it', async () => {
    const p = param(tensor(randn(300, 1), [300]));
    const opt = new Adam([p], { lr: 0.1 });
    setGrad(p, randn(300, 2));
    await runtime().sync();
    const before = runtime().pool.snapshot().liveBytes;
    opt.step();
    opt.step();
    await runtime().sync();
    expect(runtime().pool.snapshot().liveBytes).toBe(before);
    opt.zeroGrad();
    opt.dispose();
    p.dispose();
  });

  it('rejects bad settings and bad state with clear messages', () => {
    const p = param(tensor(randn(4, 1), [4]));
    expect(() => new Adam([], { lr: 0.1 })).toThrow(/Adam: got an empty parameter list/);
    expect(() => new Adam([p, p], { lr: 0.1 })).toThrow(/more than once/);
    expect(() => new Adam([p], { lr: -1 })).toThrow(/invalid learning rate -1/);
    expect(() => new Adam([p], { lr: 0.1, betas: [1, 0.999] })).toThrow(/invalid beta at index 0: 1/);
    expect(() => new Adam([p], { lr: 0.1, eps: -1 })).toThrow(/invalid eps -1/);
    const opt = new Adam([p], { lr: 0.1 });
    expect(() => opt.loadState({ step: [], m: [], v: [] })).toThrow(/Adam.loadState: expected 1 entries/);
    expect(() => opt.loadState({ step: [1], m: [new Float32Array(3)], v: [new Float32Array(4)] })).toThrow(
      /Adam.loadState: m\[0\] \(3 values\) does not match parameter/,
    );
    expect(() => opt.loadState({ step: [1.5], m: [new Float32Array(4)], v: [new Float32Array(4)] })).toThrow(
      /step\[0\] must be a non-negative integer/,
    );
    p.grad = keep(tensor(randn(5, 1), [5]));
    expect(() => opt.step()).toThrow(/Adam.step: gradient .*\[5\] does not match parameter .*\[4\]/);
    opt.zeroGrad();
    opt.dispose();
    p.dispose();
  });
});
