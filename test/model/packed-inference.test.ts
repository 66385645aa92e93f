/**
 * A model loaded for inference only (`rdpp test`, `rdpp predict`, `bench infer`) stores every multi-tap
 * conv weight as the forward GEMM reads it (Rdpp.packForInference, NetState.packConvWeights,
 * PackedConvWeight): the same anomaly maps bit for bit, one weight-copy dispatch fewer per student 3×3 conv
 * and batch, nothing resident twice, and clear errors where the packed model is used for anything else.
 * ResNet-18 RD++ with formula weights at 32², batch 2.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  backward,
  conv2d,
  convTuning,
  EMULATED_MMA_TILE,
  packConvWeight,
  runtime,
  scope,
  setFlags,
  type Tensor,
  tensor,
  traceConvs,
} from '../../src/engine/index.js';
import type { Rdpp } from '../../src/model/rdpp.js';
import { studentCheckpoint } from '../../src/pipeline/checkpoint.js';
import { loadModel } from '../../src/pipeline/model.js';
import { mmaGemmTile } from '../../src/shaders/matmul.js';
import { defaultConfig, type TrainConfig } from '../../src/train/config.js';
import { expectSameBits } from '../helpers/bits.js';
import { formulaRdpp, formulaTeacher } from '../helpers/formula-teacher.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

let hasF16 = false;
beforeAll(async () => {
  await gpu();
  hasF16 = runtime().gpu.has('shader-f16');
});

const tuningDefaults = { ...convTuning };
afterEach(() => {
  Object.assign(convTuning, tuningDefaults);
  vi.restoreAllMocks();
});

const SHAPE = [2, 3, 32, 32];
const image = () => tensor(randn(2 * 3 * 32 * 32, 11), SHAPE);

/** The maps of one inference batch, the dispatches it took and the conv GEMMs it recorded. */
async function infer(m: Rdpp, img: Tensor) {
  const rt = runtime();
  const before = rt.counters.dispatches;
  const { result, calls } = traceConvs(() =>
    scope(() => {
      const { raw, smooth, scores } = m.anomalyMaps(img);
      return [raw, smooth, scores];
    }),
  );
  const dispatches = rt.counters.dispatches - before;
  const data = await Promise.all(result.map((t) => t.read()));
  for (const t of result) t.dispose();
  return { data, dispatches, calls };
}

describe('Rdpp.packForInference', () => {
  it('gives the same maps bit for bit, without the per-batch weight copies, and holds less', async () => {
    const rt = runtime();
    const base = rt.pool.snapshot().liveBytes;
    const m = formulaRdpp();
    const img = image();
    await infer(m, img); // the teacher's kept copies are made here (KEEP_PACKED_WEIGHTS=frozen)
    const plain = await infer(m, img);
    const residentPlain = rt.pool.snapshot().liveBytes - base;
    // the student's multi-tap forward convs: each copied its weight (one permute dispatch) every batch
    const copied = plain.calls.filter(
      (c) => c.pass === 'fwd' && !c.frozenWeight && c.geom.kh * c.geom.kw > 1,
    );
    expect(copied.length).toBeGreaterThan(20);

    m.packForInference();
    expect(rt.derived.stats().copies).toBe(0);
    // the originals' buffers went back to the device, not to the pool's idle list
    expect(rt.pool.snapshot().pooledBytes).toBe(0);
    const packed = await infer(m, img);
    expect(packed.dispatches).toBe(plain.dispatches - copied.length);
    // every multi-tap conv reads a weight without gradient now (1×1 convs and deconvs read theirs as they are)
    expect(
      packed.calls.filter((c) => c.pass === 'fwd' && c.geom.kh * c.geom.kw > 1).every((c) => c.frozenWeight),
    ).toBe(true);
    for (let i = 0; i < 3; i++) expectSameBits(packed.data[i]!, plain.data[i]!, `map ${i}`);
    // no kept copies: the teacher's packed weights replace its originals, the student's are not doubled
    expect(rt.derived.stats().copies).toBe(0);
    const residentPacked = rt.pool.snapshot().liveBytes - base;
    expect(residentPacked).toBeLessThan(residentPlain);

    img.dispose();
    m.dispose();
    expect(rt.pool.snapshot().liveBytes).toBe(base);
  });

  it('packs multi-tap conv weights only, and refuses training and read-back with a clear message', () => {
    const m = formulaRdpp();
    m.packForInference();
    const s = m.decoder.state;
    expect(s.isPacked).toBe(true);
    const decl = (pred: (shape: number[]) => boolean, conv: boolean) =>
      s.decls.find((d) => d.name.endsWith('.weight') && !!d.convWeight === conv && pred(d.shape))!.name;
    // a 3×3 conv is packed; a 2×2 transposed conv and a 1×1 conv stay tensors
    const three = decl((sh) => sh.length === 4 && sh[2] === 3, true);
    expect(() => s.get(three)).toThrow(/packed for inference/);
    expect(s.convWeight(three).describe()).toContain('packed for inference');
    expect(s.get(decl((sh) => sh.length === 4 && sh[2] === 2, false)).rank).toBe(4);
    expect(
      m.ocbe.state.get(m.ocbe.state.decls.find((d) => d.shape[2] === 1 && d.convWeight)!.name).rank,
    ).toBe(4);
    expect(() => m.parameterGroups()).toThrow(/packed for inference/);
    expect(() => s.load(new Map(), 'checkpoint')).toThrow();
    m.dispose();
  });

  it('conv2d refuses a packed weight where a gradient would flow', () => {
    const w = tensor(randn(4 * 3 * 9, 2), [4, 3, 3, 3]);
    const p = packConvWeight(w);
    const x = tensor(randn(3 * 36, 3), [1, 3, 6, 6]);
    x.requiresGrad = true;
    expect(() => conv2d(x, p, null, { padding: 1 })).toThrow(
      /packed for inference, but an input requires a gradient/,
    );
    const one = tensor(randn(4 * 3, 2), [4, 3, 1, 1]);
    expect(() => packConvWeight(one)).toThrow(/more than one tap/);
    one.dispose();
    for (const t of [w, p, x]) t.dispose();
  });

  it('loadModel (test, predict) returns a packed model', async () => {
    const m = formulaRdpp();
    const cfg: TrainConfig = {
      ...defaultConfig(),
      teacher: 'resnet18',
      teacherPath: 'formula',
      imageSize: 32,
    };
    const bytes = await studentCheckpoint(m, cfg);
    m.dispose();
    const loaded = await loadModel(bytes, 'model.safetensors', {
      loadTeacher: async () => formulaTeacher(),
    });
    expect(loaded.model.studentStates().every((s) => s.isPacked)).toBe(true);
    expect(loaded.model.teacher.state.isPacked).toBe(true);
    loaded.model.dispose();
  });
});

describe('Rdpp.packTeacher (rdpp train)', () => {
  it('a training step gives the same loss and gradients, with the teacher held once', async () => {
    const rt = runtime();
    const img = image();
    const noisy = tensor(randn(2 * 3 * 32 * 32, 12), SHAPE);
    const results: { loss: number; grads: Float32Array[]; copies: number; resident: number }[] = [];
    for (const pack of [false, true]) {
      const base = rt.pool.snapshot().liveBytes;
      const m = formulaRdpp();
      if (pack) m.packTeacher();
      const params = [...m.parameterGroups().proj, ...m.parameterGroups().ocbeDecoder];
      const loss = scope(() => {
        const f = m.trainForward(img, noisy, [1, 0], 'off');
        backward(f.loss);
        return f.loss;
      });
      const resident = rt.pool.snapshot().liveBytes - base;
      results.push({
        loss: (await loss.read())[0]!,
        // (OCBE's conv4 / bn4 are declared but unused: no gradient)
        grads: await Promise.all(params.filter((p) => p.grad).map((p) => p.grad!.read())),
        copies: rt.derived.stats().copies,
        resident,
      });
      loss.dispose();
      m.dispose();
    }
    const [plain, packed] = results as [(typeof results)[0], (typeof results)[0]];
    expect(packed.loss).toBe(plain.loss);
    expect(packed.grads.length).toBe(plain.grads.length);
    expect(plain.grads.length).toBeGreaterThan(50);
    for (let i = 0; i < plain.grads.length; i++)
      expectSameBits(packed.grads[i]!, plain.grads[i]!, `gradient ${i}`);
    // the plain teacher kept its copies beside the originals; the packed one has nothing to keep
    expect(plain.copies).toBeGreaterThan(0);
    expect(packed.copies).toBe(0);
    expect(packed.resident).toBeLessThan(plain.resident);
    img.dispose();
    noisy.dispose();
  });
});

describe('packed as f16 for f16 GEMMs (PRECISION=f16)', () => {
  const kernels: [string, Partial<typeof convTuning>][] = [
    ['SIMT f16 operands', {}],
    ['emulated tensor cores', { tile: mmaGemmTile(EMULATED_MMA_TILE) }],
  ];
  for (const [name, tuning] of kernels)
    it(`a conv reads the f16 weight and computes exactly what it does from the f32 one (${name})`, async (ctx) => {
      if (!hasF16) ctx.skip();
      const restore = setFlags({ PRECISION: 'f16' });
      Object.assign(convTuning, tuning);
      try {
        // 3×3 with channels in fours (the weight read through vec4<f16>) and not; 1×1 (read as it is)
        for (const [ci, co, k] of [
          [8, 12, 3],
          [5, 6, 3],
          [8, 12, 1],
        ] as const) {
          const w = tensor(randn(co * ci * k * k, ci), [co, ci, k, k]);
          const x = tensor(randn(2 * ci * 64, co), [2, ci, 8, 8]);
          const calls = vi.spyOn(runtime(), 'run');
          const p = packConvWeight(w, 'f16');
          expect(p.dtype).toBe('f16');
          const [a, b] = await Promise.all(
            scope(() => [
              conv2d(x, w, null, { padding: k === 3 ? 1 : 0 }),
              conv2d(x, p, null, { padding: k === 3 ? 1 : 0 }),
            ]).map((t) => t.read().finally(() => t.dispose())),
          );
          expectSameBits(b!, a!, `${k}×${k} conv, ${ci} → ${co} channels`);
          const fwd = calls.mock.calls.map(([q]) => q).filter((q) => q.name === 'conv2d_fwd');
          expect(fwd.some((q) => q.inputs.some((i) => i.name === 'wt' && i.type === 'f16'))).toBe(true);
          if (ci % 4 === 0 && k === 3)
            expect(fwd.some((q) => q.inputs.some((i) => i.name === 'wt4' && i.type === 'vec4<f16>'))).toBe(
              true,
            );
          vi.restoreAllMocks();
          for (const t of [w, x, p]) t.dispose();
        }
      } finally {
        restore();
      }
    });

  it('the whole model: the same maps, weights in half the bytes; an f32 GEMM refuses an f16 weight', async (ctx) => {
    if (!hasF16) ctx.skip();
    const rt = runtime();
    const restore = setFlags({ PRECISION: 'f16' });
    try {
      const img = image();
      const sizes: number[] = [];
      const maps: Float32Array[][] = [];
      for (const pack of [false, true]) {
        const base = rt.pool.snapshot().liveBytes;
        const m = formulaRdpp();
        if (pack) m.packForInference();
        maps.push((await infer(m, img)).data);
        sizes.push(rt.pool.snapshot().liveBytes - base);
        if (pack) {
          const w = m.decoder.state.convWeight(
            m.decoder.state.decls.find((d) => d.convWeight && d.shape[2] === 3)!.name,
          );
          expect(w.dtype).toBe('f16');
          // under f16 the 1×1 weights are halves too
          const oneByOne = m.ocbe.state.decls.find((d) => d.convWeight && d.shape[2] === 1)!.name;
          expect(m.ocbe.state.convWeight(oneByOne).dtype).toBe('f16');
          const x = tensor(new Float32Array(w.shape[1] * 16), [1, w.shape[1], 4, 4]);
          const back = setFlags({ PRECISION: 'f32' });
          try {
            expect(() => conv2d(x, w, null, { padding: 1 })).toThrow(/packed as f16 for f16 GEMMs/);
          } finally {
            back();
            x.dispose();
          }
        }
        m.dispose();
      }
      for (let i = 0; i < 3; i++) expectSameBits(maps[1]![i]!, maps[0]![i]!, `map ${i}`);
      // multi-tap weights in f16, the rest (1×1, deconvs, norms) in f32: well under the f32 model's bytes
      expect(sizes[1]!).toBeLessThan(0.8 * sizes[0]!);
      img.dispose();
    } finally {
      restore();
    }
  });
});
