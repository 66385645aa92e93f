/**
 * f16 storage (tensor dtype 'f16'): what the frozen teacher's activations are stored in under
 * PRECISION=f16. The conv kernels compute exactly as before and only the stores and loads change, so the
 * checks are bit-for-bit:
 *   - conv2dFused with an f16 output equals the f32 output rounded to the nearest half (the rounding
 *     happens once, after bias, batch norm, residual and ReLU), in one pass and after split-K;
 *   - conv2dFused reading an f16 input (or residual) equals the same conv reading that input widened to
 *     f32 — through the tap-major loader, the flat-K stem loader and the vec4<f16> view of 1×1 convs,
 *     on the SIMT f32 and f16 kernels and the (emulated) tensor-core kernel;
 *   - maxPool2d and cast move halves exactly; an op that cannot read f16 says so instead of misreading.
 * Then the teachers: under PRECISION=f16 every teacher conv writes f16, the taps come back f32, and they
 * differ from f32 storage by a measured, bounded amount.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  activationDtype,
  add,
  batchNorm,
  cast,
  concat,
  conv2d,
  conv2dFused,
  convTranspose2dFused,
  convTuning,
  cosineMap,
  EMULATED_MMA_TILE,
  frozenActivationDtype,
  instanceNormLeakyRelu,
  maxPool2d,
  noGrad,
  type Program,
  relu,
  runtime,
  scope,
  setFlags,
  type Tensor,
  tensor,
  withActivations,
} from '../../src/engine/index.js';
import { Rng } from '../../src/model/init.js';
import { Rdpp } from '../../src/model/rdpp.js';
import { KerasResnet50Teacher } from '../../src/model/teacher/keras-resnet50.js';
import { TorchvisionTeacher } from '../../src/model/teacher/torchvision.js';
import { mmaGemmTile } from '../../src/shaders/matmul.js';
import { expectSameValues } from '../helpers/bits.js';
import { relErr } from '../helpers/conv-ref.js';
import { toF16 } from '../helpers/f16-check.js';
import { formulaTeacher } from '../helpers/formula-teacher.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

let hasF16 = false;
beforeAll(async () => {
  hasF16 = (await gpu()).has('shader-f16');
});

const tuningDefaults = { ...convTuning };
afterEach(() => {
  Object.assign(convTuning, tuningDefaults);
  vi.restoreAllMocks();
});

/** Run `fn` in a scope and read back the tensors it returns (then free them). */
async function readScoped(fn: () => Tensor[]): Promise<Float32Array[]> {
  const ts = scope(fn);
  try {
    return await Promise.all(ts.map((t) => t.read()));
  } finally {
    for (const t of ts) t.dispose();
  }
}

interface Case {
  x: number[];
  w: number[];
  stride: number;
  padding: number;
  residual: boolean;
}

/** A fused conv → BN → (+ residual) → ReLU with seeded random operands; `dtype` the output's. */
function fusedConv(c: Case, seed: number) {
  const [n, ci, h, wd] = c.x as [number, number, number, number];
  const [co, , kh] = c.w as [number, number, number];
  const ho = Math.floor((h + 2 * c.padding - kh) / c.stride) + 1;
  const wo = Math.floor((wd + 2 * c.padding - kh) / c.stride) + 1;
  const x = tensor(randn(n * ci * h * wd, seed), c.x);
  const w = tensor(randn(co * ci * kh * kh, seed + 1, 0.3), c.w);
  const bias = tensor(randn(co, seed + 2), [co]);
  const bn = {
    weight: tensor(randn(co, seed + 3), [co]),
    bias: tensor(randn(co, seed + 4), [co]),
    runningMean: tensor(randn(co, seed + 5), [co]),
    runningVar: tensor(
      randn(co, seed + 6).map((v) => 0.5 + v * v),
      [co],
    ),
    eps: 1e-3,
  };
  const res = c.residual ? tensor(randn(n * co * ho * wo, seed + 7), [n, co, ho, wo]) : undefined;
  const run = (input: Tensor, dtype: 'f32' | 'f16', residual = res) =>
    conv2dFused(
      input,
      w,
      bias,
      { stride: c.stride, padding: c.padding },
      { bn, relu: true, dtype, ...(residual ? { residual } : {}) },
    );
  return { x, res, run };
}

const CASES: Record<string, Case> = {
  '3×3 s1 p1 (tap-major loader)': {
    x: [2, 12, 7, 6],
    w: [20, 12, 3, 3],
    stride: 1,
    padding: 1,
    residual: false,
  },
  '1×1 s1 with a residual (vec4 loads)': {
    x: [2, 16, 6, 6],
    w: [24, 16, 1, 1],
    stride: 1,
    padding: 0,
    residual: true,
  },
  '7×7 s2 p3, 3 channels (the stem: flat K)': {
    x: [1, 3, 17, 15],
    w: [16, 3, 7, 7],
    stride: 2,
    padding: 3,
    residual: false,
  },
  '1×1 s2 (a strided shortcut)': {
    x: [2, 8, 9, 8],
    w: [12, 8, 1, 1],
    stride: 2,
    padding: 0,
    residual: false,
  },
};

describe('conv2dFused with f16 storage', () => {
  for (const [name, c] of Object.entries(CASES))
    it(`${name}: an f16 output is the f32 output rounded; an f16 input reads as its widened value`, async (ctx) => {
      if (!hasF16) ctx.skip();
      const [y32, y16, wide, fromHalf, fromWide] = await readScoped(() => {
        const f = fusedConv(c, 11);
        const x16 = cast(f.x, 'f16');
        const xw = cast(x16, 'f32');
        const r16 = f.res ? cast(f.res, 'f16') : undefined;
        const rw = r16 ? cast(r16, 'f32') : undefined;
        const out = [f.run(f.x, 'f32'), f.run(f.x, 'f16'), xw, f.run(x16, 'f32', r16), f.run(xw, 'f32', rw)];
        expect(out[1]!.dtype).toBe('f16');
        return out;
      });
      expectSameValues(y16!, toF16(y32!), 'f16 output vs f32 output rounded');
      expect(relErr(wide!, toF16(wide!))).toBe(0);
      expectSameValues(fromHalf!, fromWide!, 'f16 input vs widened input');
      // the inputs really were rounded (else the second check shows nothing)
      expect(relErr(y16!, y32!)).toBeGreaterThan(1e-5);
    });

  it('split-K: the slice sum rounds the epilogue once (partials stay f32)', async (ctx) => {
    if (!hasF16) ctx.skip();
    Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 2, targetWorkgroups: 1000 });
    const c: Case = { x: [1, 40, 5, 5], w: [8, 40, 3, 3], stride: 1, padding: 1, residual: true };
    const calls = vi.spyOn(runtime(), 'run');
    const [y32, y16] = await readScoped(() => {
      const f = fusedConv(c, 21);
      return [f.run(f.x, 'f32'), f.run(f.x, 'f16')];
    });
    expect(calls.mock.calls.some(([p]) => p.name === 'splitk_sum_fused')).toBe(true);
    expectSameValues(y16!, toF16(y32!), 'split-K f16 output');
  });

  const kernels: [string, Record<string, unknown>, Partial<typeof convTuning>][] = [
    ['SIMT f16 operands', { PRECISION: 'f16' }, {}],
    ['emulated tensor cores', { PRECISION: 'f16' }, { tile: mmaGemmTile(EMULATED_MMA_TILE) }],
  ];
  for (const [name, flags, tuning] of kernels)
    it(`an f16 input reads as its widened value on the ${name} kernel (1×1 vec4<f16> view, 3×3)`, async (ctx) => {
      if (!hasF16) ctx.skip();
      const restore = setFlags(flags);
      Object.assign(convTuning, tuning);
      try {
        for (const c of [
          CASES['1×1 s1 with a residual (vec4 loads)']!,
          CASES['3×3 s1 p1 (tap-major loader)']!,
        ]) {
          const calls = vi.spyOn(runtime(), 'run');
          const [a, b] = await readScoped(() => {
            const f = fusedConv(c, 31);
            const x16 = cast(f.x, 'f16');
            return [f.run(x16, 'f16'), f.run(cast(x16, 'f32'), 'f16')];
          });
          expectSameValues(a!, b!, `${name}, ${c.w.join('×')}`);
          const convs = calls.mock.calls.map(([p]) => p).filter((p) => p.name.startsWith('conv2d_fwd'));
          const halfIn = convs.find((p) => p.inputs.find((i) => i.name === 'x')?.type === 'f16');
          expect(halfIn, 'a conv read an f16 x').toBeDefined();
          if (c.w[2] === 1)
            expect(
              halfIn!.inputs.some((i) => i.type === 'vec4<f16>'),
              'the 1×1 read x through vec4<f16>',
            ).toBe(true);
          vi.restoreAllMocks();
        }
      } finally {
        restore();
      }
    });
});

describe('the rest of the inference path in f16: deconv, instance norm, concat', () => {
  it('convTranspose2dFused: an f16 output is the f32 output rounded, an f16 input reads as its widened value', async (ctx) => {
    if (!hasF16) ctx.skip();
    const [y32, y16, fromHalf, fromWide] = await readScoped(() => {
      const x = tensor(randn(2 * 8 * 3 * 4, 51), [2, 8, 3, 4]);
      const w = tensor(randn(8 * 6 * 4, 52, 0.4), [8, 6, 2, 2]);
      const co = 6;
      const bn = {
        weight: tensor(randn(co, 53), [co]),
        bias: tensor(randn(co, 54), [co]),
        runningMean: tensor(randn(co, 55), [co]),
        runningVar: tensor(
          randn(co, 56).map((v) => 0.5 + v * v),
          [co],
        ),
      };
      const run = (input: Tensor, dtype: 'f32' | 'f16') =>
        convTranspose2dFused(input, w, { bn, relu: true, dtype });
      const x16 = cast(x, 'f16');
      return [run(x, 'f32'), run(x, 'f16'), run(x16, 'f16'), run(cast(x16, 'f32'), 'f16')];
    });
    expectSameValues(y16!, toF16(y32!), 'deconv f16 output');
    expectSameValues(fromHalf!, fromWide!, 'deconv f16 input');
  });

  it('instanceNormLeakyRelu on f16 is the f32 norm of the widened input, rounded (vec4 and scalar layouts)', async (ctx) => {
    if (!hasF16) ctx.skip();
    for (const shape of [
      [2, 3, 8, 6],
      [1, 2, 5, 3],
    ]) {
      const [half, wide] = await readScoped(() => {
        const x16 = cast(
          tensor(
            randn(
              shape.reduce((a, b) => a * b),
              61,
              3,
            ),
            shape,
          ),
          'f16',
        );
        const y = instanceNormLeakyRelu(x16, 0.01);
        expect(y.dtype).toBe('f16');
        return [y, instanceNormLeakyRelu(cast(x16, 'f32'), 0.01)];
      });
      expectSameValues(half!, toF16(wide!), `instance norm ${shape.join('×')}`);
    }
  });

  it('cosineMap of f16 inputs is the cosine of the widened inputs (both, or one of them)', async (ctx) => {
    if (!hasF16) ctx.skip();
    for (const shape of [
      [2, 37, 5, 6],
      [1, 3, 4, 4],
    ]) {
      const [both, one, wide] = await readScoped(() => {
        const n = shape.reduce((p, q) => p * q);
        const a16 = cast(tensor(randn(n, 81), shape), 'f16');
        const b16 = cast(tensor(randn(n, 82), shape), 'f16');
        const aw = cast(a16, 'f32');
        const bw = cast(b16, 'f32');
        return [cosineMap(a16, b16), cosineMap(aw, b16), cosineMap(aw, bw)];
      });
      expectSameValues(both!, wide!, `cosine ${shape.join('×')}, both f16`);
      expectSameValues(one!, wide!, `cosine ${shape.join('×')}, b f16`);
    }
  });

  it('concat moves halves (vec4 and scalar copies) and refuses mixed storage types', async (ctx) => {
    if (!hasF16) ctx.skip();
    for (const [a, b] of [
      [
        [2, 4, 2, 2],
        [2, 8, 2, 2],
      ],
      [
        [1, 3, 1, 3],
        [1, 2, 1, 3],
      ],
    ]) {
      const [half, wide] = await readScoped(() => {
        const x = tensor(
          randn(
            a!.reduce((p, q) => p * q),
            71,
          ),
          a!,
        );
        const y = tensor(
          randn(
            b!.reduce((p, q) => p * q),
            72,
          ),
          b!,
        );
        const c16 = concat([cast(x, 'f16'), cast(y, 'f16')], 1);
        expect(c16.dtype).toBe('f16');
        return [c16, concat([x, y], 1)];
      });
      expectSameValues(half!, toF16(wide!), `concat ${a!.join('×')} + ${b!.join('×')}`);
    }
    scope(() => {
      const x = tensor(randn(4, 1), [1, 1, 2, 2]);
      expect(() => concat([x, cast(x, 'f16')], 1)).toThrow(/different storage types/);
    });
  });
});

describe('other ops and f16 tensors', () => {
  it('cast rounds to the nearest half and widens exactly; same type gives a new tensor', async (ctx) => {
    if (!hasF16) ctx.skip();
    const v = new Float32Array([
      0,
      -0,
      1,
      -2.5,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      65504,
      -65504,
      Math.PI,
      1e-3,
      6.1e-5,
    ]);
    const values = Float32Array.from([...v, ...randn(301, 5, 100)]);
    const [half, back, same] = await readScoped(() => {
      const t = tensor(values, [values.length]);
      const h = cast(t, 'f16');
      expect(h.dtype).toBe('f16');
      expect(h.byteLength).toBe(2 * values.length);
      const s = cast(t, 'f32');
      expect(s).not.toBe(t);
      return [h, cast(h, 'f32'), s];
    });
    expectSameValues(half!, toF16(values), 'f32 → f16');
    expectSameValues(back!, half!, 'f16 → f32');
    expectSameValues(same!, values, 'f32 → f32');
  });

  it('maxPool2d keeps f16 (exactly the rounded f32 pool) and refuses an f16 input that needs a gradient', async (ctx) => {
    if (!hasF16) ctx.skip();
    const [a, b] = await readScoped(() => {
      const x = tensor(randn(2 * 3 * 9 * 8, 41), [2, 3, 9, 8]);
      const p = { kernel: 3, stride: 2, padding: 1 };
      const y16 = maxPool2d(cast(x, 'f16'), p);
      expect(y16.dtype).toBe('f16');
      return [y16, maxPool2d(x, p)];
    });
    expectSameValues(a!, toF16(b!), 'max pool');
    scope(() => {
      const x = tensor(randn(16, 1), [1, 1, 4, 4]);
      x.requiresGrad = true;
      const x16 = noGrad(() => cast(x, 'f16'));
      x16.requiresGrad = true;
      expect(() => maxPool2d(x16, { kernel: 2, stride: 2, padding: 0 })).toThrow(
        /f16 and requires a gradient/,
      );
    });
  });

  it('an op that reads f32 given an f16 tensor stops with a message naming cast', (ctx) => {
    if (!hasF16) ctx.skip();
    scope(() => {
      const x16 = cast(tensor(randn(8, 2), [8]), 'f16');
      expect(() => relu(x16)).toThrow(/'in_x' is an f16 tensor, but this op reads f32 .*cast\(t, 'f32'\)/);
      expect(() => add(x16, x16)).toThrow(/'in_x' is an f16 tensor/);
      const img = cast(tensor(randn(2 * 4 * 4, 3), [1, 2, 4, 4]), 'f16');
      const w = tensor(randn(3 * 2 * 9, 4), [3, 2, 3, 3]);
      // parameters stay f32 even where activations may be f16
      expect(() => conv2dFused(img, cast(w, 'f16'), null, { padding: 1 }, {})).toThrow(
        /conv2dFused: .* f16; weights, bias and batch-norm parameters are f32/,
      );
      expect(() => conv2d(img, cast(w, 'f16'), null, { padding: 1 })).toThrow(
        /conv2d: .* f16; weights, bias and batch-norm parameters are f32/,
      );
      const ones = tensor([1, 1], [2]);
      // batch norm reads f16 activations (training on f16, f16-training.test.ts), not f16 parameters
      const [a, b] = [tensor([0, 0], [2]), tensor([1, 1], [2])];
      expect(() => batchNorm(img, cast(ones, 'f16'), ones, a, b, { training: true })).toThrow(
        /batchNorm: .* f16; batch-norm parameters and running statistics are f32/,
      );
    });
  });

  it('withActivations sets conv2dFused’s default output type and restores it, also after a throw', (ctx) => {
    if (!hasF16) ctx.skip();
    expect(activationDtype()).toBe('f32');
    expect(() =>
      withActivations('f16', () => {
        expect(activationDtype()).toBe('f16');
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(activationDtype()).toBe('f32');
  });

  it('frozen activations are f16 only under PRECISION=f16, with F16_STORAGE on, on a device with shader-f16', (ctx) => {
    if (!hasF16) ctx.skip();
    expect(frozenActivationDtype()).toBe('f32');
    let restore = setFlags({ PRECISION: 'f16' });
    try {
      expect(frozenActivationDtype()).toBe('f16');
      setFlags({ F16_STORAGE: false });
      expect(frozenActivationDtype()).toBe('f32');
      setFlags({ F16_STORAGE: true });
      vi.spyOn(runtime().gpu, 'has').mockImplementation((f) => f !== 'shader-f16');
      vi.spyOn(console, 'warn').mockImplementation(() => {});
      expect(frozenActivationDtype()).toBe('f32');
    } finally {
      restore();
    }
    restore = setFlags({ F16_STORAGE: true });
    restore();
  });
});

/**
 * Random weights a ResNet can run on: convs scaled by 1/√fan-in, BN variances in [0.5, 1.5) (names:
 * torchvision's `running_var`, Keras's `.var`), everything else small.
 */
function randomWeights(t: KerasResnet50Teacher | TorchvisionTeacher): void {
  let seed = 100;
  const s = t.state;
  s.load(
    new Map(
      s.decls.map((d) => {
        const n = d.shape.reduce((a, b) => a * b, 1);
        const r = randn(n, seed++);
        const data =
          d.shape.length === 4
            ? r.map((v) => v / Math.sqrt(n / d.shape[0]!))
            : /(running_)?var$/.test(d.name)
              ? r.map((v) => 0.5 + (v * v) / 4)
              : r.map((v) => 0.2 * v);
        return [d.name, { shape: d.shape, data }];
      }),
    ),
    'random weights',
  );
}

/** Every program a teacher's forward runs, with its taps (read back) — under the given flags. */
async function teacherRun(
  make: () => KerasResnet50Teacher | TorchvisionTeacher,
  flags: Record<string, unknown>,
  xShape: number[],
): Promise<{ programs: Program[]; taps: Float32Array[]; dtypes: string[] }> {
  const t = make();
  const restore = setFlags(flags);
  const calls = vi.spyOn(runtime(), 'run');
  try {
    const n = xShape.reduce((a, b) => a * b);
    const taps = scope(() => t.forward(tensor(randn(n, 7), xShape)));
    const dtypes = taps.map((x) => x.dtype);
    const programs = calls.mock.calls.map(([p]) => p);
    return { programs, taps: await readScoped(() => taps), dtypes };
  } finally {
    restore();
    calls.mockRestore();
    t.state.dispose();
  }
}

describe('the teachers under PRECISION=f16 store their activations in f16', () => {
  const teachers: [string, () => KerasResnet50Teacher | TorchvisionTeacher, number][] = [
    ['Keras ResNet-50', () => new KerasResnet50Teacher(), 32],
    ['ResNet-18', () => new TorchvisionTeacher('resnet18'), 32],
  ];
  for (const [name, make, size] of teachers)
    it(`${name}: every conv writes f16, three casts give f32 taps close to f32 storage`, async (ctx) => {
      if (!hasF16) ctx.skip();
      const init = () => {
        const t = make();
        randomWeights(t);
        return t;
      };
      const shape = [2, 3, size, size];
      const half = await teacherRun(init, { PRECISION: 'f16' }, shape);
      const wide = await teacherRun(init, { PRECISION: 'f16', F16_STORAGE: false }, shape);
      expect(half.dtypes).toEqual(['f32', 'f32', 'f32']);
      // every conv's output (its store, or the slice sum after split-K, whose partials stay f32) is f16
      const outputs = half.programs.filter((p) => ['conv2d_fwd_fused', 'splitk_sum_fused'].includes(p.name));
      const convCount = make().state.decls.filter((d) => d.shape.length === 4).length;
      expect(outputs).toHaveLength(convCount);
      for (const p of outputs) expect(p.outputs[0]!.type, p.name).toBe('f16');
      expect(half.programs.filter((p) => p.name === 'cast')).toHaveLength(3);
      expect(half.programs.find((p) => p.name === 'maxpool_fwd')?.outputs[0]?.type).toBe('f16');
      expect(wide.programs.some((p) => p.outputs.some((o) => o.type === 'f16'))).toBe(false);
      // f16 storage rounds the residual adds and the taps on top of f16 operands: measured on lavapipe
      // 6e-4 to 9e-4 relative to each tap's largest value; bound 4e-3 (rounding may go either way on a GPU)
      half.taps.forEach((tap, i) => {
        const e = relErr(tap, wide.taps[i]!);
        console.log(`${name} tap ${i + 1}: f16 vs f32 storage ${e.toExponential(2)}`);
        expect(e).toBeGreaterThan(0);
        expect(e).toBeLessThan(4e-3);
      });
    });
});

describe('RD++ inference under PRECISION=f16 stores the student’s activations in f16 too', () => {
  it('every GEMM, norm and concat of the projection, OCBE and decoder writes f16; maps close to f32 storage', async (ctx) => {
    if (!hasF16) ctx.skip();
    const model = new Rdpp(formulaTeacher());
    const rng = new Rng(3);
    for (const st of model.studentStates()) st.init(rng);
    const maps = async (flags: Record<string, unknown>) => {
      const restore = setFlags(flags);
      const calls = vi.spyOn(runtime(), 'run');
      try {
        const [smooth, scores] = await readScoped(() => {
          const m = model.anomalyMaps(tensor(randn(2 * 3 * 32 * 32, 9), [2, 3, 32, 32]));
          return [m.smooth, m.scores];
        });
        return { smooth: smooth!, scores: scores!, programs: calls.mock.calls.map(([p]) => p) };
      } finally {
        restore();
        calls.mockRestore();
      }
    };
    try {
      const half = await maps({ PRECISION: 'f16' });
      const wide = await maps({ PRECISION: 'f16', F16_STORAGE: false });
      const writers = [
        'conv2d_fwd_fused',
        'deconv2x2_fwd_fused',
        'splitk_sum_fused',
        'norm_stats_apply',
        'block_copy',
      ];
      const written = half.programs.filter((p) => writers.includes(p.name));
      // every instance norm in one dispatch (statistics and output), writing its output as halves
      expect(half.programs.filter((p) => p.name === 'norm_stats_apply')).toHaveLength(12);
      // 15 teacher convs + 12 projection convs, 12 instance norms, 3 OCBE convs, a concat, 2 OCBE blocks, the decoder
      expect(written.length).toBeGreaterThan(60);
      for (const p of written) expect(p.outputs[0]!.type, p.name).toMatch(/f16/);
      // the teacher's taps and the decoder's outputs stay f16 up to the cosine, which reads halves: no cast
      expect(half.programs.filter((p) => p.name === 'cast')).toHaveLength(0);
      const cos = half.programs.filter((p) => p.name === 'cos_map');
      expect(cos).toHaveLength(3);
      for (const p of cos) expect(p.inputs.map((i) => i.type)).toEqual(['f16', 'f16']);
      expect(wide.programs.some((p) => p.outputs.some((o) => o.type?.includes('f16')))).toBe(false);
      const eMap = relErr(half.smooth, wide.smooth);
      const eScore = relErr(half.scores, wide.scores);
      console.log(
        `RD++ maps, f16 vs f32 storage: smooth ${eMap.toExponential(2)}, scores ${eScore.toExponential(2)}`,
      );
      // measured on lavapipe: 4.8e-4 (maps) and 2.3e-4 (scores) of the largest value; bound ≈ 4×
      expect(eMap).toBeGreaterThan(0);
      expect(eMap).toBeLessThan(2e-3);
      expect(eScore).toBeLessThan(2e-3);
    } finally {
      model.dispose();
    }
  });
});
