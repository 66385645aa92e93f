/**
 * Norm, pool and shape ops: CPU float64 references on odd shapes (scalar and vec4 paths, groups split
 * over several workgroups), gradient checks, the running-stat update, parity cases, errors and leaks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backward,
  batchNorm,
  batchNormRelu,
  cast,
  concat,
  instanceNorm,
  instanceNormLeakyRelu,
  leakyRelu,
  maxPool2d,
  noGrad,
  relu,
  reshape,
  runtime,
  scope,
  setFlags,
  slice,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { formulaTensor } from '../../src/model/init.js';
import '../../src/parity/cases/norm.js';
import { runOpCase } from '../../src/parity/ops.js';
import { opsFixture } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

type Shape = [number, number, number, number];
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let d = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    s = Math.max(s, Math.abs(want[i]!));
  }
  return s > 0 ? d / s : d;
}

// ---- CPU references (float64) ----

interface NormRef {
  y: Float64Array;
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
  mean: Float64Array;
  varB: Float64Array;
}

/**
 * Group-wise normalisation reference. perInstance: groups are (n, c) planes; otherwise channels.
 * fixed: use the given mean/var (BN eval) instead of batch statistics.
 */
function normRef(
  x: Float32Array,
  [n, c, h, w]: Shape,
  g: Float32Array,
  opts: {
    perInstance: boolean;
    weight?: Float32Array;
    bias?: Float32Array;
    fixed?: { mean: Float32Array; var: Float32Array };
    eps?: number;
    act?: (z: number) => number;
    dact?: (z: number) => number;
  },
): NormRef {
  const eps = opts.eps ?? 1e-5;
  const hw = h * w;
  const groups = opts.perInstance ? n * c : c;
  const members = (grp: number): number[] => {
    const idx: number[] = [];
    if (opts.perInstance) for (let p = 0; p < hw; p++) idx.push(grp * hw + p);
    else for (let k = 0; k < n; k++) for (let p = 0; p < hw; p++) idx.push((k * c + grp) * hw + p);
    return idx;
  };
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(c);
  const db = new Float64Array(c);
  const mean = new Float64Array(groups);
  const varB = new Float64Array(groups);
  for (let grp = 0; grp < groups; grp++) {
    const idx = members(grp);
    const ch = opts.perInstance ? grp % c : grp;
    const m = idx.length;
    let mu = 0;
    for (const i of idx) mu += x[i]!;
    mu /= m;
    let v = 0;
    for (const i of idx) v += (x[i]! - mu) ** 2;
    v /= m;
    mean[grp] = mu;
    varB[grp] = v;
    const useMu = opts.fixed ? opts.fixed.mean[ch]! : mu;
    const useVar = opts.fixed ? opts.fixed.var[ch]! : v;
    const inv = 1 / Math.sqrt(useVar + eps);
    const gam = opts.weight ? opts.weight[ch]! : 1;
    const bet = opts.bias ? opts.bias[ch]! : 0;
    let sg = 0;
    let sgx = 0;
    const gp = new Map<number, number>();
    for (const i of idx) {
      const xh = (x[i]! - useMu) * inv;
      const z = xh * gam + bet;
      y[i] = opts.act ? opts.act(z) : z;
      const gi = g[i]! * (opts.dact ? opts.dact(z) : 1);
      gp.set(i, gi);
      sg += gi;
      sgx += gi * xh;
    }
    if (!opts.perInstance) {
      dw[ch] = sgx;
      db[ch] = sg;
    }
    for (const i of idx) {
      const xh = (x[i]! - useMu) * inv;
      dx[i] = opts.fixed ? gam * inv * gp.get(i)! : ((gam * inv) / m) * (m * gp.get(i)! - sg - xh * sgx);
    }
  }
  return { y, dx, dw, db, mean, varB };
}

function maxPoolRef(x: Float32Array, [n, c, h, w]: Shape, k: number, s: number, p: number, g?: Float32Array) {
  const oh = Math.floor((h + 2 * p - k) / s) + 1;
  const ow = Math.floor((w + 2 * p - k) / s) + 1;
  const y = new Float64Array(n * c * oh * ow);
  const dx = new Float64Array(x.length);
  let o = 0;
  for (let pl = 0; pl < n * c; pl++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++, o++) {
        let best = Number.NEGATIVE_INFINITY;
        let arg = -1;
        for (let ky = 0; ky < k; ky++)
          for (let kx = 0; kx < k; kx++) {
            const iy = oy * s - p + ky;
            const ix = ox * s - p + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const i = pl * h * w + iy * w + ix;
            if (arg < 0 || x[i]! > best) {
              best = x[i]!;
              arg = i;
            }
          }
        y[o] = best;
        if (g) dx[arg] = dx[arg]! + g[o]!;
      }
  return { y, dx, shape: [n, c, oh, ow] };
}

/** Forward + backward with a given upstream gradient; returns y and the grads of `params`. */
async function run(f: () => Tensor, params: Tensor[], g: Float32Array) {
  const y = scope(() => {
    const out = f();
    backward(out, tensor(g, out.shape));
    return out;
  });
  const out = { y: await y.read(), grads: [] as Float32Array[] };
  for (const p of params) {
    out.grads.push(p.grad ? await p.grad.read() : new Float32Array(0));
    p.grad?.dispose();
    p.grad = null;
  }
  y.dispose();
  return out;
}

function leaf(data: Float32Array, shape: readonly number[], grad = true): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = grad;
  return t;
}

const channelVec = (c: number, seed: number, base: number, scale: number) =>
  Float32Array.from(randn(c, seed), (v) => base + scale * v);

// ---- batch norm ----

describe('batchNorm', () => {
  // [3,5,7,9]: scalar path; [2,3,8,4]: vec4; [2,3,64,80]: vec4, 2 splits; [3,2,45,45]: scalar, 3 splits
  const shapes: Shape[] = [
    [3, 5, 7, 9],
    [2, 3, 8, 4],
    [2, 3, 64, 80],
    [3, 2, 45, 45],
  ];
  for (const shape of shapes) {
    it(`train forward, backward and running stats match the CPU reference on [${shape}]`, async () => {
      const [, c] = shape;
      const n = numel(shape);
      // a large offset: catches E[x²] − E[x]² style variance
      const xd = Float32Array.from(randn(n, 3, 2), (v, i) => v + 100 + (i % 7) * 0.01);
      const gd = randn(n, 4);
      const wd = channelVec(c, 5, 1, 0.2);
      const bd = channelVec(c, 6, 0, 0.3);
      const rm0 = channelVec(c, 7, 0, 0.1);
      const rv0 = channelVec(c, 8, 1, 0.2);
      const x = leaf(xd, shape);
      const w = leaf(wd, [c]);
      const b = leaf(bd, [c]);
      const rm = tensor(rm0, [c]);
      const rv = tensor(rv0, [c]);
      const r = await run(() => batchNorm(x, w, b, rm, rv, { training: true }), [x, w, b], gd);
      const ref = normRef(xd, shape, gd, { perInstance: false, weight: wd, bias: bd });
      expect(maxRel(r.y, ref.y)).toBeLessThan(2e-5);
      expect(maxRel(r.grads[0]!, ref.dx)).toBeLessThan(1e-4);
      expect(maxRel(r.grads[1]!, ref.dw)).toBeLessThan(1e-4);
      expect(maxRel(r.grads[2]!, ref.db)).toBeLessThan(1e-5);
      const cnt = n / c;
      const wantRm = Array.from(rm0, (v, k) => 0.9 * v + 0.1 * ref.mean[k]!);
      const wantRv = Array.from(rv0, (v, k) => 0.9 * v + (0.1 * ref.varB[k]! * cnt) / (cnt - 1));
      expect(maxRel(await rm.read(), wantRm)).toBeLessThan(1e-6);
      expect(maxRel(await rv.read(), wantRv)).toBeLessThan(1e-5);
      for (const t of [x, w, b, rm, rv]) t.dispose();
    });

    it(`eval forward and backward match the CPU reference on [${shape}]`, async () => {
      const [, c] = shape;
      const n = numel(shape);
      const xd = randn(n, 13, 3);
      const gd = randn(n, 14);
      const wd = channelVec(c, 15, 1, 0.2);
      const bd = channelVec(c, 16, 0, 0.3);
      const rmd = channelVec(c, 17, 0, 0.5);
      const rvd = channelVec(c, 18, 2, 0.5);
      const x = leaf(xd, shape);
      const w = leaf(wd, [c]);
      const b = leaf(bd, [c]);
      const rm = tensor(rmd, [c]);
      const rv = tensor(rvd, [c]);
      const r = await run(() => batchNorm(x, w, b, rm, rv, { training: false }), [x, w, b], gd);
      const ref = normRef(xd, shape, gd, {
        perInstance: false,
        weight: wd,
        bias: bd,
        fixed: { mean: rmd, var: rvd },
      });
      expect(maxRel(r.y, ref.y)).toBeLessThan(1e-5);
      expect(maxRel(r.grads[0]!, ref.dx)).toBeLessThan(1e-5);
      expect(maxRel(r.grads[1]!, ref.dw)).toBeLessThan(1e-4);
      expect(maxRel(r.grads[2]!, ref.db)).toBeLessThan(1e-5);
      // eval leaves the running statistics alone
      expect(Array.from(await rm.read())).toEqual(Array.from(rmd));
      expect(Array.from(await rv.read())).toEqual(Array.from(rvd));
      for (const t of [x, w, b, rm, rv]) t.dispose();
    });
  }

  it('in training, runs forward and backward in one dispatch each where one item reduces a channel, bit for bit as in three', async () => {
    // [3,5,7,9] scalar and [2,3,8,4] vec4: one split per channel; [2,3,64,80]: two splits, three passes
    const cases: [Shape, boolean][] = [
      [[3, 5, 7, 9], true],
      [[2, 3, 8, 4], true],
      [[2, 3, 64, 80], false],
    ];
    for (const [shape, single] of cases) {
      for (const withRelu of [false, true]) {
        const [, c] = shape;
        const n = numel(shape);
        const xd = Float32Array.from(randn(n, 23, 2), (v) => v + 10);
        const gd = randn(n, 24);
        const w = leaf(channelVec(c, 25, 1, 0.2), [c]);
        const b = leaf(channelVec(c, 26, 0, 0.3), [c]);
        const x = leaf(xd, shape);
        const pass = async () => {
          const rm = tensor(channelVec(c, 27, 0, 0.1), [c]);
          const rv = tensor(channelVec(c, 28, 1, 0.2), [c]);
          const op = withRelu ? batchNormRelu : batchNorm;
          const d0 = runtime().counters.dispatches;
          const r = await run(() => op(x, w, b, rm, rv, { training: true }), [x, w, b], gd);
          const dispatches = runtime().counters.dispatches - d0;
          const out = [r.y, ...r.grads, await rm.read(), await rv.read()].map((a) => Array.from(a));
          rm.dispose();
          rv.dispose();
          return { out, dispatches };
        };
        const one = await pass();
        const restore = setFlags({ NORM_SINGLE_PASS: false });
        try {
          const three = await pass();
          // y, dx, dγ, dβ, running mean and variance
          for (let k = 0; k < 6; k++) expect(one.out[k], `${shape} output ${k}`).toEqual(three.out[k]);
          expect(three.dispatches - one.dispatches, `${shape}`).toBe(single ? 4 : 0);
        } finally {
          restore();
        }
        for (const t of [x, w, b]) t.dispose();
      }
    }
  });

  it('running stats follow the momentum formula over two train calls (custom momentum)', async () => {
    const shape: Shape = [2, 3, 5, 6];
    const c = 3;
    const cnt = 2 * 5 * 6;
    const rm0 = channelVec(c, 21, 0, 0.1);
    const rv0 = channelVec(c, 22, 1, 0.2);
    const rm = tensor(rm0, [c]);
    const rv = tensor(rv0, [c]);
    const w = tensor(channelVec(c, 23, 1, 0.1), [c]);
    const b = tensor(channelVec(c, 24, 0, 0.1), [c]);
    let wantM = Array.from(rm0, Number);
    let wantV = Array.from(rv0, Number);
    const m = 0.3;
    for (const seed of [25, 26]) {
      const xd = randn(numel(shape), seed, 4);
      const ref = normRef(xd, shape, new Float32Array(xd.length), { perInstance: false });
      noGrad(() => scope(() => batchNorm(tensor(xd, shape), w, b, rm, rv, { training: true, momentum: m })));
      wantM = wantM.map((v, k) => (1 - m) * v + m * ref.mean[k]!);
      wantV = wantV.map((v, k) => (1 - m) * v + (m * ref.varB[k]! * cnt) / (cnt - 1));
    }
    expect(maxRel(await rm.read(), wantM)).toBeLessThan(1e-6);
    expect(maxRel(await rv.read(), wantV)).toBeLessThan(1e-6);
    for (const t of [rm, rv, w, b]) t.dispose();
  });

  for (const training of [true, false]) {
    it(`batchNormRelu equals relu(batchNorm) forward and backward (training: ${training})`, async () => {
      const shape: Shape = [2, 4, 6, 6];
      const n = numel(shape);
      const xd = randn(n, 31, 2);
      const gd = randn(n, 32);
      const mk = () => ({
        x: leaf(xd, shape),
        w: leaf(channelVec(4, 33, 1, 0.2), [4]),
        b: leaf(channelVec(4, 34, 0, 0.5), [4]),
        rm: tensor(channelVec(4, 35, 0, 0.3), [4]),
        rv: tensor(channelVec(4, 36, 1.5, 0.3), [4]),
      });
      const a = mk();
      const b = mk();
      const fused = await run(
        () => batchNormRelu(a.x, a.w, a.b, a.rm, a.rv, { training }),
        [a.x, a.w, a.b],
        gd,
      );
      const plain = await run(
        () => relu(batchNorm(b.x, b.w, b.b, b.rm, b.rv, { training })),
        [b.x, b.w, b.b],
        gd,
      );
      expect(fused.y.some((v) => v === 0)).toBe(true);
      expect(maxRel(fused.y, plain.y)).toBeLessThan(1e-6);
      for (let k = 0; k < 3; k++) expect(maxRel(fused.grads[k]!, plain.grads[k]!)).toBeLessThan(1e-5);
      expect(maxRel(await a.rv.read(), await b.rv.read())).toBe(0);
      for (const t of [...Object.values(a), ...Object.values(b)]) t.dispose();
    });
  }

  it('gradcheck: train mode (x, weight, bias)', async () => {
    const shape: Shape = [2, 3, 3, 5];
    const rm = tensor(new Float32Array(3), [3]);
    const rv = tensor(new Float32Array(3).fill(1), [3]);
    const { errors } = await gradcheck(
      (x, w, b) => batchNorm(x!, w!, b!, rm, rv, { training: true }),
      [
        { data: randn(90, 41, 2), shape },
        { data: channelVec(3, 42, 1, 0.3), shape: [3] },
        { data: channelVec(3, 43, 0, 0.3), shape: [3] },
      ],
      { h: 1e-2 },
    );
    for (const e of errors) expect(e).toBeLessThan(1e-2);
    rm.dispose();
    rv.dispose();
  });

  it('gradcheck: eval mode (x, weight, bias)', async () => {
    const shape: Shape = [2, 3, 4, 4];
    const rm = tensor(channelVec(3, 51, 0, 0.5), [3]);
    const rv = tensor(channelVec(3, 52, 1.5, 0.3), [3]);
    const { errors } = await gradcheck(
      (x, w, b) => batchNorm(x!, w!, b!, rm, rv, { training: false }),
      [
        { data: randn(96, 53, 2), shape },
        { data: channelVec(3, 54, 1, 0.3), shape: [3] },
        { data: channelVec(3, 55, 0, 0.3), shape: [3] },
      ],
      { h: 1e-2 },
    );
    for (const e of errors) expect(e).toBeLessThan(1e-2);
    rm.dispose();
    rv.dispose();
  });

  it('rejects channel-count mismatches and bad input with clear errors', () => {
    const x = tensor(new Float32Array(2 * 3 * 4), [2, 3, 2, 2]);
    const c3 = tensor(new Float32Array(3), [3]);
    const c3b = tensor(new Float32Array(3), [3]);
    const c4 = tensor(new Float32Array(4), [4]);
    const train = { training: true };
    expect(() => batchNorm(x, c4, c3, c3, c3b, train)).toThrow(
      /batchNorm: weight .*\[4\] must have shape \[3\]/,
    );
    expect(() => batchNorm(x, c3, c4, c3, c3b, train)).toThrow(/batchNorm: bias .*must have shape \[3\]/);
    expect(() => batchNorm(x, c3, c3, c4, c3b, train)).toThrow(/runningMean .*must have shape \[3\]/);
    expect(() => batchNorm(x, c3, c3, c3, c3, train)).toThrow(/must be different tensors/);
    expect(() => batchNorm(c3, c3, c3, c3, c3b, train)).toThrow(/batchNorm: x must be NCHW/);
    const one = tensor(new Float32Array(3), [1, 3, 1, 1]);
    expect(() => batchNorm(one, c3, c3, c3, c3b, train)).toThrow(/more than 1 value per channel/);
    for (const t of [x, c3, c3b, c4, one]) t.dispose();
  });
});

// ---- instance norm ----

describe('instanceNorm', () => {
  const shapes: Shape[] = [
    [2, 3, 5, 7],
    [2, 3, 8, 8],
    [1, 2, 96, 96],
    [1, 1, 3, 3],
  ];
  for (const shape of shapes) {
    it(`forward and backward match the CPU reference on [${shape}]`, async () => {
      const n = numel(shape);
      const xd = Float32Array.from(randn(n, 61, 3), (v) => v - 50);
      const gd = randn(n, 62);
      const x = leaf(xd, shape);
      const r = await run(() => instanceNorm(x), [x], gd);
      const ref = normRef(xd, shape, gd, { perInstance: true });
      expect(maxRel(r.y, ref.y)).toBeLessThan(2e-5);
      expect(maxRel(r.grads[0]!, ref.dx)).toBeLessThan(1e-4);
      x.dispose();
    });
  }

  it('runs forward and input gradient in one dispatch each where one item reduces each plane, bit for bit as in three', async () => {
    // [2,3,5,7]: scalar layout; [2,3,8,8] and [2,64,32,32]: vec4 (32×32 = 256 vectors per plane, the
    // projection's deepest size at 256²); [1,2,96,96]: 2,304 vectors per plane, split — three passes
    const shapes: [Shape, number][] = [
      [[2, 3, 5, 7], 1],
      [[2, 3, 8, 8], 1],
      [[2, 64, 32, 32], 1],
      [[1, 2, 96, 96], 3],
    ];
    for (const [shape, dispatches] of shapes) {
      for (const leaky of [false, true]) {
        const n = numel(shape);
        const xd = Float32Array.from(randn(n, 71, 3), (v) => v + 20);
        const gd = randn(n, 72);
        const x = leaf(xd, shape);
        const op = () => (leaky ? instanceNormLeakyRelu(x, 0.01) : instanceNorm(x));
        const before = runtime().counters.dispatches;
        scope(() => noGrad(op).dispose());
        expect(runtime().counters.dispatches - before, `${shape}`).toBe(dispatches);
        const d0 = runtime().counters.dispatches;
        const one = await run(op, [x], gd);
        const d1 = runtime().counters.dispatches;
        const restore = setFlags({ NORM_SINGLE_PASS: false });
        try {
          const three = await run(op, [x], gd);
          // forward and input gradient: one dispatch each instead of three
          const saved = runtime().counters.dispatches - d1 - (d1 - d0);
          expect(saved, `${shape} dispatches saved`).toBe(dispatches === 1 ? 4 : 0);
          expect(Array.from(one.y), `${shape} y`).toEqual(Array.from(three.y));
          expect(Array.from(one.grads[0]!), `${shape} dx`).toEqual(Array.from(three.grads[0]!));
        } finally {
          restore();
        }
        x.dispose();
      }
    }
  });

  it("in one dispatch with f16 storage (inference) writes the three-pass path's halves", async (ctx) => {
    if (!(await gpu()).has('shader-f16')) ctx.skip();
    const x = tensor(
      Float32Array.from(randn(2 * 8 * 16 * 16, 73), (v) => 4 * v),
      [2, 8, 16, 16],
    );
    const read = () => scope(() => noGrad(() => instanceNormLeakyRelu(cast(x, 'f16'), 0.01)));
    const a = read();
    const restore = setFlags({ NORM_SINGLE_PASS: false });
    const b = read();
    restore();
    expect(a.dtype).toBe('f16');
    expect(Array.from(await a.read())).toEqual(Array.from(await b.read()));
    for (const t of [x, a, b]) t.dispose();
  });

  it('instanceNormLeakyRelu equals leakyRelu(instanceNorm) forward and backward', async () => {
    const shape: Shape = [2, 3, 6, 5];
    const n = numel(shape);
    const xd = randn(n, 71, 2);
    const gd = randn(n, 72);
    const a = leaf(xd, shape);
    const b = leaf(xd, shape);
    const fused = await run(() => instanceNormLeakyRelu(a, 0.01), [a], gd);
    const plain = await run(() => leakyRelu(instanceNorm(b), 0.01), [b], gd);
    expect(maxRel(fused.y, plain.y)).toBeLessThan(1e-6);
    expect(maxRel(fused.grads[0]!, plain.grads[0]!)).toBeLessThan(1e-5);
    a.dispose();
    b.dispose();
  });

  it('gradcheck', async () => {
    const { errors } = await gradcheck(
      (x) => instanceNorm(x!),
      [{ data: randn(60, 81, 2), shape: [2, 2, 3, 5] }],
      {
        h: 1e-2,
      },
    );
    expect(errors[0]).toBeLessThan(1e-2);
  });

  it('gradcheck: fused leaky relu', async () => {
    const { errors } = await gradcheck(
      (x) => instanceNormLeakyRelu(x!, 0.2),
      [{ data: randn(48, 82, 2), shape: [1, 3, 4, 4] }],
      { h: 1e-3 },
    );
    expect(errors[0]).toBeLessThan(1e-2);
  });

  it('rejects bad input', () => {
    const x = tensor(new Float32Array(6), [2, 3]);
    const one = tensor(new Float32Array(6), [2, 3, 1, 1]);
    expect(() => instanceNorm(x)).toThrow(/instanceNorm: x must be NCHW/);
    expect(() => instanceNorm(one)).toThrow(/more than 1 spatial element/);
    x.dispose();
    one.dispose();
  });
});

// ---- max pool ----

describe('maxPool2d', () => {
  const cases: [Shape, number, number, number][] = [
    [[2, 3, 9, 11], 3, 2, 1],
    [[1, 2, 8, 8], 2, 2, 0],
    [[2, 2, 7, 5], 3, 1, 1],
    [[1, 3, 13, 10], 5, 3, 2],
  ];
  for (const [shape, k, s, p] of cases) {
    it(`forward and backward match the CPU reference on [${shape}] k${k} s${s} p${p} (with ties)`, async () => {
      const n = numel(shape);
      // integer values in a small range: many ties, which must go to the first max in scan order
      const xd = Float32Array.from(randn(n, 91), (v) => Math.round(v * 3) - 5);
      const ref0 = maxPoolRef(xd, shape, k, s, p);
      const gd = randn(ref0.y.length, 92);
      const ref = maxPoolRef(xd, shape, k, s, p, gd);
      const x = leaf(xd, shape);
      const r = await run(() => maxPool2d(x, { kernel: k, stride: s, padding: p }), [x], gd);
      expect(Array.from(r.y)).toEqual(Array.from(ref.y));
      expect(maxRel(r.grads[0]!, ref.dx)).toBeLessThan(1e-6);
      x.dispose();
    });
  }

  it('all-negative windows at the border are not raised to 0 by padding', async () => {
    const xd = Float32Array.from({ length: 16 }, (_, i) => -1 - i);
    const y = noGrad(() => maxPool2d(tensor(xd, [1, 1, 4, 4]), { kernel: 3, stride: 2, padding: 1 }));
    expect(Array.from(await y.read())).toEqual([-1, -2, -5, -6]);
    y.dispose();
  });

  it('gradcheck (distinct values)', async () => {
    const n = 2 * 2 * 7 * 7;
    // a permutation of well-separated values, so a finite-difference step never changes an argmax
    const data = Float32Array.from({ length: n }, (_, i) => ((i * 37) % n) * 0.05 - 4);
    const { errors } = await gradcheck(
      (x) => maxPool2d(x!, { kernel: 3, stride: 2, padding: 1 }),
      [{ data, shape: [2, 2, 7, 7] }],
      { h: 1e-3, samples: 40 },
    );
    expect(errors[0]).toBeLessThan(1e-2);
  });

  it('rejects bad options', () => {
    const x = tensor(new Float32Array(16), [1, 1, 4, 4]);
    expect(() => maxPool2d(x, { kernel: 3, stride: 2, padding: 2 })).toThrow(/at most half/);
    expect(() => maxPool2d(x, { kernel: 0, stride: 1, padding: 0 })).toThrow(/positive integers/);
    expect(() => maxPool2d(x, { kernel: 6, stride: 1, padding: 0 })).toThrow(/smaller than/);
    const r3 = x.view([1, 4, 4]);
    expect(() => maxPool2d(r3, { kernel: 3, stride: 2, padding: 1 })).toThrow(/maxPool2d: x must be NCHW/);
    r3.dispose();
    x.dispose();
  });
});

// ---- shape ops ----

function concatRef(parts: { data: Float32Array; shape: number[] }[], axis: number): Float32Array {
  const outer = numel(parts[0]!.shape.slice(0, axis));
  const out: number[] = [];
  for (let o = 0; o < outer; o++)
    for (const p of parts) {
      const inner = numel(p.shape.slice(axis));
      for (let j = 0; j < inner; j++) out.push(p.data[o * inner + j]!);
    }
  return Float32Array.from(out);
}

describe('concat, slice, reshape', () => {
  const sets: [number[][], number][] = [
    [
      [
        [2, 3, 5, 5],
        [2, 1, 5, 5],
        [2, 4, 5, 5],
      ],
      1,
    ],
    [
      [
        [2, 4, 2, 2],
        [2, 8, 2, 2],
      ],
      1,
    ],
    [
      [
        [1, 2, 3],
        [3, 2, 3],
      ],
      0,
    ],
    [
      [
        [2, 3, 3],
        [2, 3, 1],
        [2, 3, 2],
      ],
      -1,
    ],
  ];
  for (const [shapes, axis] of sets) {
    it(`concat of ${shapes.map((s) => `[${s}]`).join(' ')} on axis ${axis}: values and split gradient`, async () => {
      const parts = shapes.map((s, k) => ({ data: randn(numel(s), 100 + k), shape: s }));
      const a = axis < 0 ? axis + shapes[0]!.length : axis;
      const want = concatRef(parts, a);
      const ts = parts.map((p) => leaf(p.data, p.shape));
      const gd = randn(want.length, 120);
      const r = await run(() => concat(ts, axis), ts, gd);
      expect(Array.from(r.y)).toEqual(Array.from(want));
      // the gradient of input k is its slab of g: concat of the grads rebuilds g exactly
      expect(
        Array.from(
          concatRef(
            parts.map((p, k) => ({ data: r.grads[k]!, shape: p.shape })),
            a,
          ),
        ),
      ).toEqual(Array.from(gd));
      for (const t of ts) t.dispose();
    });
  }

  it('gradcheck: concat on channels', async () => {
    const { errors } = await gradcheck(
      (a, b) => concat([a!, b!, a!], 1),
      [
        { data: randn(18, 131), shape: [2, 1, 3, 3] },
        { data: randn(36, 132), shape: [2, 2, 3, 3] },
      ],
      { h: 1e-3 },
    );
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });

  it('slice values and gradient (zeros outside the range)', async () => {
    const shape = [2, 5, 3];
    const xd = randn(30, 141);
    const x = leaf(xd, shape);
    const gd = randn(2 * 2 * 3, 142);
    const r = await run(() => slice(x, 1, 1, 3), [x], gd);
    const want: number[] = [];
    const dx = new Float32Array(30);
    let q = 0;
    for (let o = 0; o < 2; o++)
      for (let c = 1; c < 3; c++)
        for (let j = 0; j < 3; j++) {
          want.push(xd[o * 15 + c * 3 + j]!);
          dx[o * 15 + c * 3 + j] = gd[q++]!;
        }
    expect(Array.from(r.y)).toEqual(want);
    expect(Array.from(r.grads[0]!)).toEqual(Array.from(dx));
    x.dispose();
  });

  it('gradcheck: slice and reshape', async () => {
    const { errors } = await gradcheck(
      (x) => reshape(slice(x!, 2, 1, 4), [-1]),
      [{ data: randn(40, 151), shape: [2, 4, 5] }],
      { h: 1e-3 },
    );
    expect(errors[0]).toBeLessThan(1e-2);
  });

  it('rejects mismatched shapes and bad axes', () => {
    const a = tensor(new Float32Array(12), [1, 3, 2, 2]);
    const b = tensor(new Float32Array(8), [1, 2, 2, 2]);
    const c = tensor(new Float32Array(12), [1, 3, 4]);
    expect(() => concat([a, b], 0)).toThrow(/concat: .*\[1, 2, 2, 2\] does not match .*\[1, 3, 2, 2\]/);
    expect(() => concat([a, c], 1)).toThrow(/concat: .*does not match/);
    expect(() => concat([a, b], 4)).toThrow(/axis 4 is out of range/);
    expect(() => concat([], 0)).toThrow(/at least one tensor/);
    expect(() => slice(a, 1, 2, 5)).toThrow(/slice: range \[2, 5\)/);
    for (const t of [a, b, c]) t.dispose();
  });
});

// ---- parity with the golden fixture, formula weights, leaks ----

describe('golden parity (norm family)', () => {
  const fixture = opsFixture();
  for (const name of ['bn_train', 'bn_eval', 'instnorm', 'leaky_relu', 'maxpool']) {
    it(name, async () => {
      const c = fixture.cases.find((k) => k.name === name);
      expect(c, `fixture case ${name}`).toBeDefined();
      const r = await runOpCase(c!);
      expect(r.problem).toBeUndefined();
      for (const e of r.errors) expect(e.error, `${name}.${e.name}`).toBeLessThanOrEqual(r.tolerance);
      expect(r.pass).toBe(true);
    });
  }

  it("formulaTensor reproduces bn_train's stored weight and bias (used by bn_eval)", () => {
    const c = fixture.cases.find((k) => k.name === 'bn_train')!;
    const w = c.t('weight');
    expect(Array.from(formulaTensor('ops_bn.weight', [w.shape[0]!]))).toEqual(Array.from(w.data));
    expect(Array.from(formulaTensor('ops_bn.bias', [w.shape[0]!]))).toEqual(Array.from(c.t('bias').data));
  });
});

describe('memory', () => {
  it('forward + backward of every op inside a scope leaves no live buffers behind', async () => {
    const rt = runtime();
    await rt.sync();
    const x = leaf(randn(2 * 4 * 6 * 6, 161), [2, 4, 6, 6]);
    const w = leaf(channelVec(4, 162, 1, 0.1), [4]);
    const b = leaf(channelVec(4, 163, 0, 0.1), [4]);
    const rm = tensor(new Float32Array(4), [4]);
    const rv = tensor(new Float32Array(4).fill(1), [4]);
    const before = rt.pool.snapshot().liveBytes;
    scope(() => {
      const h1 = batchNorm(x, w, b, rm, rv, { training: true });
      const h2 = batchNormRelu(x, w, b, rm, rv, { training: false });
      const h3 = instanceNormLeakyRelu(concat([h1, h2], 1));
      const h4 = maxPool2d(slice(h3, 1, 2, 6), { kernel: 3, stride: 2, padding: 1 });
      const loss = reshape(h4, [-1]);
      backward(loss, tensor(new Float32Array(loss.size).fill(1), loss.shape));
      // forward without gradient too
      noGrad(() =>
        maxPool2d(instanceNorm(batchNorm(x, w, b, rm, rv, { training: false })), {
          kernel: 2,
          stride: 2,
          padding: 0,
        }),
      );
    });
    for (const t of [x, w, b]) {
      expect(t.grad).not.toBeNull();
      t.grad?.dispose();
      t.grad = null;
    }
    await rt.sync();
    expect(rt.pool.snapshot().liveBytes).toBe(before);
    for (const t of [x, w, b, rm, rv]) t.dispose();
  });
});
