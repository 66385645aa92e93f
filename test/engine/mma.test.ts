/**
 * The subgroup-matrix (tensor-core) GEMM core, shaders/mma.ts, in its emulated form, which runs on lavapipe:
 * the same kernel as on a GPU with tensor cores except for the three subgroup-matrix builtins. Every GEMM
 * kind (conv forward / input gradient / weight gradient, split-K, transposed conv, matmul, the fused
 * inference conv) must match the float64 reference of f16-rounded operands as tightly as the SIMT f16
 * kernel does (helpers/f16-check.ts), for the H200's configurations (16×16×16, 16×8×16, 16×8×8), one or
 * several subgroups, several fragments and K steps. Then: the WGSL with the native builtins (what a GPU
 * compiles), the configuration checks, the choice of a tile for a device (engine/mma.ts) and prepareMma's
 * check on the device (engine/mma-check.ts) through GEMM_MMA=emulate.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type AdapterReport,
  activeMmaTile,
  convTuning,
  EMULATED_MMA_TILE,
  flagsFromEnv,
  gemmTileFor,
  MMA_FEATURE,
  mmaCandidates,
  mmaRace,
  mmaStatus,
  mmaTileForDevice,
  prepareMma,
  RACE_SHAPE,
  raceFlops,
  runtime,
  setActiveMma,
  setFlags,
} from '../../src/engine/index.js';
import { gemmShader, mmaGemmTile, PLAIN_CTX, PLAIN_STORE, stridedOperand } from '../../src/shaders/matmul.js';
import {
  MMA_UNIFORMITY_RULE,
  type MmaTile,
  mmaKey,
  mmaProblem,
  mmaSharedBytes,
} from '../../src/shaders/mma.js';
import { checkConv, checkDeconv, checkFused, checkMatmul } from '../helpers/f16-check.js';
import { gpu } from '../helpers/gpu.js';

let hasF16 = false;
beforeAll(async () => {
  hasF16 = (await gpu()).has('shader-f16');
});

const tuningDefaults = { ...convTuning };
afterEach(() => {
  Object.assign(convTuning, tuningDefaults);
  setActiveMma(null, 'subgroup matrices: not prepared (the SIMT kernels run)');
  vi.restoreAllMocks();
});

const emulated = (t: Omit<MmaTile, 'emulate'>): MmaTile => ({ ...t, emulate: true });

// Layouts small enough for lavapipe to compile in seconds (its compile time grows with the loads per
// invocation, BM·BK / threads, and the unrolled products).
/** One subgroup of 64 (AMD's wave size), 1×2 fragments of 16×16×16: a 16×32 block, BK 16. */
const ONE_SG = emulated({
  config: { m: 16, n: 16, k: 16 },
  lanes: 64,
  sgm: 1,
  sgn: 1,
  fm: 1,
  fn: 2,
  steps: 1,
});
/** 2×2 subgroups of 32 (the H200's size), 1×2 fragments of 16×8×16: a 32×32 block, BK 16. */
const FOUR_SG = emulated({
  config: { m: 16, n: 8, k: 16 },
  lanes: 32,
  sgm: 2,
  sgn: 2,
  fm: 1,
  fn: 2,
  steps: 1,
});
/** 16×8×8 in 2×2 subgroups of 32, two K steps per staged tile: a 32×16 block, BK 16. */
const SMALL_K = emulated({
  config: { m: 16, n: 8, k: 8 },
  lanes: 32,
  sgm: 2,
  sgn: 2,
  fm: 1,
  fn: 1,
  steps: 2,
});

const LAYOUTS = [
  ['one subgroup of 64, 16×16×16', ONE_SG],
  ['four subgroups, 16×8×16', FOUR_SG],
  ['four subgroups, 16×8×8, two K steps', SMALL_K],
  // double-buffered staging (kLoopDouble): the fragments' offsets move between the two halves
  ['four subgroups, 16×8×16, double-buffered', { ...FOUR_SG, db: true }],
  ['four subgroups, 16×8×8, two K steps, double-buffered', { ...SMALL_K, db: true }],
] as const;

describe('subgroup-matrix GEMM (emulated builtins): f16 operands, f32 accumulation', () => {
  for (const [name, mma] of LAYOUTS) {
    it(`conv2d 3×3 with bias (forward, dx, dw): ${name}`, async (ctx) => {
      if (!hasF16) ctx.skip();
      convTuning.tile = mmaGemmTile(mma);
      await checkConv(mmaKey(mma), { n: 2, ci: 19, h: 9, w: 8, co: 35, kh: 3, kw: 3, s: 1, p: 1 }, true, 5);
    });
  }

  it('conv2d 1×1 s2, 3×3 s2 and the 7×7 stem (k-mode weight loader, phase-split dgrad, both K walks) and split-K', async (ctx) => {
    if (!hasF16) ctx.skip();
    convTuning.tile = mmaGemmTile(FOUR_SG);
    await checkConv(
      'mma conv 1×1 s2',
      { n: 2, ci: 40, h: 9, w: 8, co: 12, kh: 1, kw: 1, s: 2, p: 0 },
      false,
      15,
    );
    await checkConv(
      'mma conv 3×3 s2',
      { n: 1, ci: 17, h: 11, w: 13, co: 9, kh: 3, kw: 3, s: 2, p: 1 },
      true,
      25,
    );
    await checkConv(
      'mma conv 7×7 s2 (the stem)',
      { n: 1, ci: 3, h: 19, w: 17, co: 10, kh: 7, kw: 7, s: 2, p: 3 },
      false,
      35,
    );
    Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 3, targetWorkgroups: 1000 });
    await checkConv('mma split-K', { n: 3, ci: 21, h: 9, w: 11, co: 6, kh: 3, kw: 3, s: 1, p: 1 }, true, 99);
  });

  it('convTranspose2d k2 s2 (forward, dx, dw)', async (ctx) => {
    if (!hasF16) ctx.skip();
    convTuning.tile = mmaGemmTile(FOUR_SG);
    await checkDeconv('mma deconv');
  });

  it('matmul with dA and dB, one pass and split-K', async (ctx) => {
    if (!hasF16) ctx.skip();
    convTuning.tile = mmaGemmTile(SMALL_K);
    await checkMatmul('mma matmul');
  });

  it('conv2dFused (batch norm + residual in f32 after the f16 GEMM), one pass and split-K', async (ctx) => {
    if (!hasF16) ctx.skip();
    convTuning.tile = mmaGemmTile(FOUR_SG);
    await checkFused('mma fused');
  });
});

const SPEC = {
  ctx: PLAIN_CTX,
  a: stridedOperand('ma', 'k'),
  b: stridedOperand('mb', 'row'),
  store: PLAIN_STORE,
  fast: 'n' as const,
  precision: 'f16' as const,
};
const native = (t: MmaTile): MmaTile => ({ ...t, emulate: false });

describe('subgroup-matrix GEMM: the native kernel text and the configuration rules', () => {
  it('uses the builtins after the extension, with the uniformity diagnostic off only for several subgroups', () => {
    const four = gemmShader({ ...SPEC, tile: mmaGemmTile(native(FOUR_SG)) })('// header');
    expect(four.startsWith('enable f16;\nenable chromium_experimental_subgroup_matrix;\n')).toBe(true);
    expect(four).toContain('diagnostic(off, chromium.subgroup_matrix_uniformity);');
    expect(four).toContain('var acc: array<subgroup_matrix_result<f32, 8, 16>, 2>;');
    expect(four).toContain(
      'subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&As, (am0 + 0u) * SA + 0u, false, SA)',
    );
    expect(four).toContain(
      'subgroupMatrixLoad<subgroup_matrix_right<f16, 8, 16>>(&Bs, 0u + bn0 + 8u, false, SB)',
    );
    expect(four).toContain('acc[1] = subgroupMatrixMultiplyAccumulate(fa[0], fb[1], acc[1]);');
    expect(four).toContain('subgroupMatrixStore(&Cs, slot, acc[0], false, 8u);');
    expect(four).toContain('@workgroup_size(128)');
    expect(four).not.toMatch(/sg_mma|Ce\[/);
    const one = gemmShader({ ...SPEC, tile: mmaGemmTile(native(ONE_SG)) })('');
    expect(one).not.toContain('diagnostic');
    expect(one).toContain('@workgroup_size(64)');
  });

  it("turns off a uniformity rule Dawn's WGSL compiler knows", async () => {
    // Tint ignores a rule in a namespace it does not know without a word (the kernel once named
    // `chromium_experimental.…`, which left the check on: the native kernel would not have compiled). For an
    // unknown rule in a namespace it knows, it warns and lists the rules it has: ours must be one of them.
    const kernel = gemmShader({ ...SPEC, tile: mmaGemmTile(native(FOUR_SG)) })('');
    const rule = /^diagnostic\(off, ([\w.]+)\);$/m.exec(kernel)?.[1];
    expect(rule).toBe(MMA_UNIFORMITY_RULE);
    const namespace = rule!.split('.')[0];
    const { device } = await gpu();
    const module = device.createShaderModule({
      code: `diagnostic(off, ${namespace}.no_such_rule);\n@compute @workgroup_size(1) fn main() {}`,
    });
    const text = (await module.getCompilationInfo()).messages.map((m) => m.message).join('\n');
    const known = /Possible values: (.*)/.exec(text)?.[1]?.match(/'[\w.]+'/g) ?? [];
    expect(known, `Dawn's answer: ${text || '(nothing: it does not know the namespace)'}`).toContain(
      `'${rule}'`,
    );
  });

  it('rejects impossible configurations and f32 operands with a clear message', () => {
    expect(mmaProblem(FOUR_SG)).toBeNull();
    expect(mmaProblem({ ...FOUR_SG, config: { m: 12, n: 8, k: 16 } })).toMatch(/multiples of 8/);
    expect(mmaProblem({ ...FOUR_SG, lanes: 128 })).toMatch(/more than 256 invocations/);
    expect(mmaProblem({ ...ONE_SG, fn: 1, lanes: 128, config: { m: 16, n: 8, k: 8 } })).toMatch(
      /split evenly/,
    );
    expect(() => gemmShader({ ...SPEC, tile: { ...mmaGemmTile(FOUR_SG), bm: 64 } })).toThrow(
      /differ from the MMA block/,
    );
    expect(() => gemmShader({ ...SPEC, precision: 'f32', tile: mmaGemmTile(FOUR_SG) })).toThrow(
      'subgroup-matrix GEMM tiles take f16 operands',
    );
    // f16 staging of 32×(16+8) and 16×(32+8), one f32 16×8 slot per subgroup, and (emulated) the two
    // result fragments of each subgroup; double-buffered, the staging twice
    const slots = 4 * 4 * 128;
    const emulatedResults = 4 * 4 * 2 * 128;
    expect(mmaSharedBytes(FOUR_SG)).toBe(2 * (32 * 24 + 16 * 40) + slots + emulatedResults);
    expect(mmaSharedBytes(native(FOUR_SG))).toBe(2 * (32 * 24 + 16 * 40) + slots);
    expect(mmaSharedBytes({ ...native(FOUR_SG), db: true })).toBe(4 * (32 * 24 + 16 * 40) + slots);
    expect(mmaKey({ ...FOUR_SG, db: true })).toBe(`${mmaKey(FOUR_SG)}d`);
  });
});

/** An AdapterReport with what the tile choice reads. */
function report(over: {
  features?: string[];
  configs?: AdapterReport['subgroupMatrixConfigs'];
  min?: number;
  max?: number;
}): AdapterReport {
  return {
    platform: 'node',
    vendor: 'nvidia',
    architecture: 'hopper',
    device: '',
    description: '',
    isFallbackAdapter: false,
    features: over.features ?? ['shader-f16', 'subgroups', MMA_FEATURE],
    limits: {
      maxBufferSize: 2 ** 32,
      maxStorageBufferBindingSize: 2 ** 31,
      maxComputeWorkgroupStorageSize: 32768,
      maxComputeInvocationsPerWorkgroup: 1024,
      maxComputeWorkgroupSizeX: 1024,
      maxComputeWorkgroupsPerDimension: 65535,
      maxStorageBuffersPerShaderStage: 10,
      subgroupMinSize: over.min ?? 32,
      subgroupMaxSize: over.max ?? 32,
    },
    subgroupMatrixConfigs: over.configs ?? [
      { component: 'f16', result: 'f16', m: 16, n: 16, k: 16 },
      { component: 'f16', result: 'f32', m: 16, n: 8, k: 8 },
      { component: 'f16', result: 'f32', m: 16, n: 8, k: 16 },
      { component: 'f16', result: 'f32', m: 16, n: 16, k: 16 },
    ],
  };
}

describe('engine/mma.ts: which tile a device gets, and prepareMma', () => {
  it('an H200-like device gets 16×16×16 f16→f32 in 2×2 subgroups of 32: a 64×64×32 block', () => {
    const { tile, reason } = mmaTileForDevice(report({}));
    expect(reason).toBe('');
    expect(tile).toEqual({
      config: { m: 16, n: 16, k: 16 },
      lanes: 32,
      sgm: 2,
      sgn: 2,
      fm: 2,
      fn: 2,
      steps: 2,
      emulate: false,
    });
    const only168 = report({ configs: [{ component: 'f16', result: 'f32', m: 16, n: 8, k: 8 }] });
    expect(mmaTileForDevice(only168).tile).toMatchObject({ config: { m: 16, n: 8, k: 8 }, fn: 4, steps: 4 });
  });

  it('says why a device gets none', () => {
    const restore = setFlags({ ALLOW_UNSAFE_APIS: false });
    expect(mmaTileForDevice(report({ features: ['shader-f16'] })).reason).toMatch(
      /no chromium-experimental-subgroup-matrix \(Dawn offers it only with RDPP_ALLOW_UNSAFE_APIS=1\)/,
    );
    setFlags({ ALLOW_UNSAFE_APIS: true });
    expect(mmaTileForDevice(report({ features: ['shader-f16'] })).reason).toMatch(
      /no chromium-experimental-subgroup-matrix \(this adapter and driver do not offer it\)/,
    );
    restore();
    expect(mmaTileForDevice(report({ features: [MMA_FEATURE] })).reason).toMatch(/no shader-f16/);
    const f16only = report({ configs: [{ component: 'f16', result: 'f16', m: 16, n: 16, k: 16 }] });
    expect(mmaTileForDevice(f16only).reason).toMatch(/no f16×f16→f32/);
    expect(mmaTileForDevice(report({ min: 8, max: 32 })).reason).toMatch(/subgroup size varies \(8 to 32\)/);
  });

  it('GEMM_MMA: parsed from RDPP_GEMM_MMA with its choices', () => {
    expect(flagsFromEnv({ RDPP_GEMM_MMA: 'off' })).toEqual({ GEMM_MMA: 'off' });
    expect(flagsFromEnv({ RDPP_GEMM_MMA: 'on' })).toEqual({ GEMM_MMA: 'on' });
    expect(() => flagsFromEnv({ RDPP_GEMM_MMA: 'fast' })).toThrow(
      'RDPP_GEMM_MMA=fast: expected one of auto, on, off, emulate',
    );
  });

  it('auto on lavapipe (no subgroup matrices): says why and the f16 GEMMs keep the SIMT tile', async (ctx) => {
    if (!hasF16) ctx.skip();
    const restore = setFlags({ PRECISION: 'f16', GEMM_MMA: 'auto' });
    try {
      const line = await prepareMma();
      if (runtime().gpu.has(MMA_FEATURE)) ctx.skip(); // a real GPU: the device check covers it
      expect(line).toMatch(
        /subgroup matrices: not used: the device has no chromium-experimental-subgroup-matrix/,
      );
      expect(activeMmaTile()).toBeNull();
      expect(gemmTileFor(64, 64).mma).toBeUndefined();
    } finally {
      restore();
    }
  });

  it('emulate: passes its check on the device, then every f16 GEMM runs on it (and f32 GEMMs do not)', async (ctx) => {
    if (!hasF16) ctx.skip();
    const restore = setFlags({ PRECISION: 'f16', GEMM_MMA: 'emulate' });
    try {
      const line = await prepareMma();
      expect(line).toMatch(
        /^subgroup matrices: 16×16×16 f16→f32 \(emulated\), 4 subgroups of 32, 32×32×16 blocks, checked on this device \(\d\.\de[+-]\d+ from the SIMT f16 kernel\); speed not compared \(GEMM_MMA=emulate\)$/,
      );
      expect(mmaStatus()).toBe(line);
      expect(activeMmaTile()).toEqual(EMULATED_MMA_TILE);
      expect(gemmTileFor(64, 64).mma).toEqual(EMULATED_MMA_TILE);
      setFlags({ PRECISION: 'f32' });
      expect(gemmTileFor(64, 64).mma).toBeUndefined();
    } finally {
      restore();
    }
    // GEMM_MMA=off and PRECISION=f32 turn it off again
    const restore2 = setFlags({ PRECISION: 'f16', GEMM_MMA: 'off' });
    try {
      expect(await prepareMma()).toBe('subgroup matrices: off (GEMM_MMA=off)');
      expect(activeMmaTile()).toBeNull();
    } finally {
      restore2();
    }
  });

  it('a tile that fails its check (wrong results, NaN, an error) is not used: a warning, the SIMT kernel stays', async (ctx) => {
    if (!hasF16) ctx.skip();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const restore = setFlags({ PRECISION: 'f16', GEMM_MMA: 'emulate' });
    try {
      expect(await prepareMma({ check: async () => 0.25 })).toMatch(
        /differ from the SIMT f16 kernel by 2\.50e-1 \(more than 0\.0001\) on this device; the f16 GEMMs run on the SIMT kernel$/,
      );
      expect(activeMmaTile()).toBeNull();
      expect(await prepareMma({ check: async () => Number.NaN })).toMatch(
        /differ from the SIMT f16 kernel by NaN/,
      );
      const thrown = await prepareMma({
        check: async () => {
          throw new Error('WGSL: unresolved call\nsecond line');
        },
      });
      expect(thrown).toMatch(
        /failed on this device \(WGSL: unresolved call\); the f16 GEMMs run on the SIMT kernel$/,
      );
      expect(activeMmaTile()).toBeNull();
      expect(gemmTileFor(64, 64).mma).toBeUndefined();
      expect(warn).toHaveBeenCalledTimes(3);
    } finally {
      restore();
    }
  });
  /** A device that offers the emulated tile (auto and on then reach the check and, under auto, the race). */
  const offersEmulated = () => ({ tile: EMULATED_MMA_TILE, reason: '' });
  const race = (mmaMs: number, simtMs: number) => async () => ({ mmaMs, simtMs, shape: RACE_SHAPE });

  it('auto keeps tensor cores only where they are faster than the SIMT f16 kernel; on skips the race', async (ctx) => {
    if (!hasF16) ctx.skip();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const restore = setFlags({ PRECISION: 'f16', GEMM_MMA: 'auto' });
    const check = async () => 2e-7;
    try {
      // faster: kept, with both timings and the rate (10 convolutions of 4.8 GFLOP in 2 ms: 24.2 TFLOP/s),
      // and the double-buffered twin's time (as fast: the single-buffered tile, the first, is kept)
      const fast = await prepareMma({ tileFor: offersEmulated, check, race: race(2, 4) });
      expect(fast).toBe(
        'subgroup matrices: 16×16×16 f16→f32 (emulated), 4 subgroups of 32, 32×32×16 blocks, checked on this device (2.0e-7 from the SIMT f16 kernel), 2.00× as fast as the SIMT f16 kernel (2.00 vs 4.00 ms for 10 3×3 convolutions of 4.8 GFLOP (24.2 vs 12.1 TFLOP/s); double-buffered: 2.00 ms)',
      );
      expect(activeMmaTile()).toEqual(EMULATED_MMA_TILE);
      // slower, or as fast: the SIMT kernel stays, and the line says how to use them anyway
      for (const [m, n] of [
        [5, 4],
        [4, 4],
      ] as const) {
        const slow = await prepareMma({ tileFor: offersEmulated, check, race: race(m, n) });
        expect(slow).toMatch(
          new RegExp(
            `checked on this device \\(2\\.0e-7 from the SIMT f16 kernel\\), but slower than the SIMT f16 kernel \\(${m}\\.00 vs ${n}\\.00 ms .*\\); the f16 GEMMs run on the SIMT kernel \\(RDPP_GEMM_MMA=on uses them anyway\\)$`,
          ),
        );
        expect(activeMmaTile()).toBeNull();
        expect(gemmTileFor(64, 64).mma).toBeUndefined();
      }
      // a race that fails: a warning, the SIMT kernel
      const failed = await prepareMma({
        tileFor: offersEmulated,
        check,
        race: async () => {
          throw new Error('device lost\nmore');
        },
      });
      expect(failed).toMatch(
        /, but timing them failed \(device lost\); the f16 GEMMs run on the SIMT kernel$/,
      );
      expect(activeMmaTile()).toBeNull();
      expect(warn).toHaveBeenCalledTimes(1);
      // a failed check never reaches the race
      const raced = vi.fn(race(1, 4));
      expect(await prepareMma({ tileFor: offersEmulated, check: async () => 0.5, race: raced })).toMatch(
        /differ from the SIMT f16 kernel/,
      );
      // on: checked, not raced, used even if slower
      setFlags({ GEMM_MMA: 'on' });
      const on = await prepareMma({ tileFor: offersEmulated, check, race: raced });
      expect(on).toMatch(
        /checked on this device \(2\.0e-7 from the SIMT f16 kernel\); speed not compared \(GEMM_MMA=on\)$/,
      );
      expect(activeMmaTile()).toEqual(EMULATED_MMA_TILE);
      expect(raced).not.toHaveBeenCalled();
    } finally {
      restore();
    }
  });

  it('auto checks and races the double-buffered twin too, and keeps the faster of the two', async (ctx) => {
    if (!hasF16) ctx.skip();
    const restore = setFlags({ PRECISION: 'f16', GEMM_MMA: 'auto' });
    const twin = { ...EMULATED_MMA_TILE, db: true };
    try {
      // the device's workgroup memory holds the twin (lavapipe: 32 KiB), a small one does not
      expect(mmaCandidates(EMULATED_MMA_TILE, 32768)).toEqual([EMULATED_MMA_TILE, twin]);
      expect(mmaCandidates(EMULATED_MMA_TILE, mmaSharedBytes(EMULATED_MMA_TILE))).toEqual([
        EMULATED_MMA_TILE,
      ]);
      const checked: MmaTile[] = [];
      const check = async (t: MmaTile) => {
        checked.push(t);
        return 2e-7;
      };
      const race = async (t: MmaTile) => ({ mmaMs: t.db ? 1.5 : 2, simtMs: 4, shape: RACE_SHAPE });
      const line = await prepareMma({ tileFor: offersEmulated, check, race });
      expect(checked).toEqual([EMULATED_MMA_TILE, twin]);
      expect(activeMmaTile()).toEqual(twin);
      expect(line).toMatch(
        /32×32×16 blocks, double-buffered, checked on this device .*, 2\.67× as fast as the SIMT f16 kernel \(1\.50 vs 4\.00 ms .*; single-buffered: 2\.00 ms\)$/,
      );
      // a twin that fails its check is left out without a warning; the tile itself still runs
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
      await prepareMma({ tileFor: offersEmulated, check: async (t) => (t.db ? 0.5 : 2e-7), race });
      expect(activeMmaTile()).toEqual(EMULATED_MMA_TILE);
      expect(warn).not.toHaveBeenCalled();
      // on: the tile alone, no twin
      setFlags({ GEMM_MMA: 'on' });
      checked.length = 0;
      await prepareMma({ tileFor: offersEmulated, check, race });
      expect(checked).toEqual([EMULATED_MMA_TILE]);
    } finally {
      restore();
    }
  });

  it('the race runs on the device: the emulated tile against the SIMT tile, timed, nothing left allocated', async (ctx) => {
    if (!hasF16) ctx.skip();
    const restore = setFlags({ PRECISION: 'f16', GEMM_MMA: 'auto' });
    const small = { n: 1, c: 32, size: 8, reps: 2 };
    try {
      const before = runtime().pool.snapshot().liveBytes;
      const r = await mmaRace(EMULATED_MMA_TILE, small);
      expect(runtime().pool.snapshot().liveBytes).toBe(before);
      expect(r.shape).toEqual(small);
      for (const ms of [r.mmaMs, r.simtMs]) {
        expect(ms).toBeGreaterThan(0);
        expect(ms).toBeLessThan(60_000);
      }
      expect(raceFlops(small)).toBe(2 * 64 * 32 * 32 * 9);
      expect(raceFlops(RACE_SHAPE) / 1e9).toBeCloseTo(4.83, 2);
      // with the whole of prepareMma: the real check and this race decide (on lavapipe, the emulation
      // of the builtins in plain WGSL is slower than the SIMT kernel, so the SIMT kernel stays)
      const line = await prepareMma({ tileFor: offersEmulated, race: (t) => mmaRace(t, small) });
      expect(line).toMatch(
        /checked on this device \(\d\.\de[+-]\d+ from the SIMT f16 kernel\), (but slower|\d+\.\d\d× as fast)/,
      );
      console.log(line);
      // with active subgroup matrices the race has no SIMT tile to compare with
      setActiveMma(EMULATED_MMA_TILE, 'test');
      await expect(mmaRace(EMULATED_MMA_TILE, small)).rejects.toThrow(/active already/);
    } finally {
      restore();
    }
  });
});
