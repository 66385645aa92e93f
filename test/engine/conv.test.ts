/**
 * The conv family (conv2d, convTranspose2d, matmul) against float64 CPU references written here, at
 * shapes that are not multiples of the 64×64×16 tiles, plus gradient checks and input validation.
 * (Fixture parity against PyTorch runs in ops-parity.test.ts.)
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  backward,
  conv2d,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dFused,
  convTranspose2d,
  convTranspose2dFused,
  convTuning,
  gemmTileFor,
  matmul,
  noGrad,
  runtime,
  scope,
  setFlags,
  splitCount,
  type Tensor,
  tensor,
  tileAdapterProblem,
  tileDeviceProblem,
  transposeWeight,
} from '../../src/engine/index.js';
import { fwdFlatK } from '../../src/shaders/conv.js';
import {
  DEFAULT_TILE,
  GEMM_TILES,
  type GemmSpec,
  gemmShader,
  tileKey,
  tileProblem,
  tileSharedBytes,
  tileStageGroups,
} from '../../src/shaders/matmul.js';
import { type Conv, convRef, deconvRef, fusedCase, matmulRef, outSize, relErr } from '../helpers/conv-ref.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

const tuningDefaults = { ...convTuning };
afterEach(() => {
  Object.assign(convTuning, tuningDefaults);
});

function leaf(data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

async function readAndDispose(...ts: (Tensor | null)[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of ts) {
    if (!t) throw new Error('missing tensor');
    out.push(await t.read());
  }
  for (const t of ts) t?.dispose();
  return out;
}

/** Run conv2d forward + backward on the GPU and compare with the reference. */
async function checkConv(c: Conv, bias: boolean, seed: number, tol = 2e-6) {
  const [ho, wo] = outSize(c) as [number, number];
  const x = randn(c.n * c.ci * c.h * c.w, seed);
  const w = randn(c.co * c.ci * c.kh * c.kw, seed + 1, 0.5);
  const b = bias ? randn(c.co, seed + 2) : null;
  const g = randn(c.n * c.co * ho * wo, seed + 3);
  const ref = convRef(c, x, w, b, g);
  const xt = leaf(x, [c.n, c.ci, c.h, c.w]);
  const wt = leaf(w, [c.co, c.ci, c.kh, c.kw]);
  const bt = b ? leaf(b, [c.co]) : null;
  const y = scope(() => {
    const y = conv2d(xt, wt, bt, { stride: c.s, padding: c.p });
    expect(y.shape).toEqual([c.n, c.co, ho, wo]);
    backward(y, tensor(g, y.shape));
    return y;
  });
  const [gy, gdx, gdw] = await readAndDispose(y, xt.grad, wt.grad);
  expect(relErr(gy!, ref.y), 'y').toBeLessThan(tol);
  expect(relErr(gdx!, ref.dx), 'dx').toBeLessThan(tol);
  expect(relErr(gdw!, ref.dw), 'dw').toBeLessThan(tol);
  if (bt) {
    const [gdb] = await readAndDispose(bt.grad);
    expect(relErr(gdb!, ref.db), 'db').toBeLessThan(tol);
  }
  for (const t of [xt, wt, bt]) t?.dispose();
}

/**
 * checkConv with the forward's K walked both ways (shaders/conv.ts): tap-major, and flat (tap·Ci + channel,
 * which fwdFlatK picks for few input channels, the stem's 3) wherever the kernel has more than one tap.
 */
async function checkConvBothWalks(c: Conv, bias: boolean, seed: number) {
  for (const flat of c.kh * c.kw > 1 ? [false, true] : [false]) {
    convTuning.flatK = flat;
    await checkConv(c, bias, seed);
  }
  convTuning.flatK = null;
}

describe('the weight copies the GEMMs read (tiled transpose)', () => {
  // shapes that leave partial 32×32 tiles on both sides, several row tiles, one and many matrices
  const shapes: [number, number, number, number][] = [
    [70, 37, 3, 3],
    [33, 3, 7, 7],
    [5, 40, 2, 2],
    [64, 64, 3, 3],
    [1, 1, 3, 1],
  ];
  for (const [co, ci, kh, kw] of shapes) {
    it(`w [${co}, ${ci}, ${kh}, ${kw}] as [T, Ci, Co] and as [T, Co, Ci]`, async () => {
      const taps = kh * kw;
      const data = randn(co * ci * taps, co + ci);
      const w = tensor(data, [co, ci, kh, kw]);
      const [fwd, dgrad] = await readAndDispose(
        transposeWeight(w, 'tap-cin-cout'),
        transposeWeight(w, 'tap-cout-cin'),
      );
      const wantFwd = new Float32Array(data.length);
      const wantDgrad = new Float32Array(data.length);
      for (let o = 0; o < co; o++)
        for (let c = 0; c < ci; c++)
          for (let t = 0; t < taps; t++) {
            const v = data[(o * ci + c) * taps + t]!;
            wantFwd[(t * ci + c) * co + o] = v;
            wantDgrad[(t * co + o) * ci + c] = v;
          }
      expect(fwd).toEqual(wantFwd);
      expect(dgrad).toEqual(wantDgrad);
      w.dispose();
    });
  }
});

describe('conv2d against a float64 reference (forward, dx, dw, db)', () => {
  const cases: [string, Conv, boolean][] = [
    ['1×1 s1, bias, batch 3', { n: 3, ci: 5, h: 7, w: 6, co: 9, kh: 1, kw: 1, s: 1, p: 0 }, true],
    [
      '1×1 s2 (odd sizes: phases without taps)',
      { n: 1, ci: 6, h: 9, w: 8, co: 4, kh: 1, kw: 1, s: 2, p: 0 },
      false,
    ],
    [
      '3×3 s1 p1, Cout 70 (two N tiles), M 300',
      { n: 3, ci: 7, h: 10, w: 10, co: 70, kh: 3, kw: 3, s: 1, p: 1 },
      true,
    ],
    [
      '3×3 s2 p1, Cin 17 (two K tiles), odd H, W',
      { n: 1, ci: 17, h: 11, w: 13, co: 5, kh: 3, kw: 3, s: 2, p: 1 },
      false,
    ],
    ['7×7 s2 p3 (the stem)', { n: 1, ci: 3, h: 19, w: 17, co: 6, kh: 7, kw: 7, s: 2, p: 3 }, false],
    ['3×5 kernel, s1 p2 (non-square)', { n: 2, ci: 4, h: 9, w: 7, co: 3, kh: 3, kw: 5, s: 1, p: 2 }, true],
    [
      '3×3 s3 p0, H 8 (a stride not 1 or 2)',
      { n: 3, ci: 2, h: 8, w: 10, co: 3, kh: 3, kw: 3, s: 3, p: 0 },
      false,
    ],
    ['3×3 s1 p0 on 3×3 (1×1 output)', { n: 1, ci: 20, h: 3, w: 3, co: 66, kh: 3, kw: 3, s: 1, p: 0 }, true],
  ];
  cases.forEach(([name, c, bias], i) => {
    it(name, async () => {
      await checkConvBothWalks(c, bias, 10 * i + 1);
    });
  });

  it('forward and weight gradient with split-K (many slices, ragged last slice)', async () => {
    Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 3, targetWorkgroups: 1000 });
    await checkConvBothWalks({ n: 3, ci: 5, h: 9, w: 11, co: 6, kh: 3, kw: 3, s: 1, p: 1 }, true, 99);
    await checkConvBothWalks({ n: 2, ci: 3, h: 10, w: 10, co: 4, kh: 3, kw: 3, s: 2, p: 1 }, false, 98);
    await checkConvBothWalks({ n: 1, ci: 3, h: 23, w: 21, co: 5, kh: 7, kw: 7, s: 2, p: 3 }, true, 97);
  });

  it('another tile configuration (32×32×8) gives the same results', async () => {
    convTuning.tile = { bm: 32, bn: 32, bk: 8 };
    await checkConvBothWalks({ n: 2, ci: 11, h: 7, w: 9, co: 35, kh: 3, kw: 3, s: 2, p: 1 }, true, 77);
  });

  // Two M tiles and two N tiles even for the 128×128 tile, several K tiles, ragged edges everywhere.
  for (const [name, tile] of Object.entries(GEMM_TILES)) {
    it(`named tile ${name} (${tile.tm ?? 4}×${tile.tn ?? 4} per invocation) gives the same results`, async () => {
      convTuning.tile = tile;
      await checkConvBothWalks({ n: 2, ci: 19, h: 9, w: 8, co: 131, kh: 3, kw: 3, s: 1, p: 1 }, true, 55);
    });
  }

  it('walks K flat only where it saves a quarter of the K tiles: the stem, not the 3×3 layers; auto takes it', async () => {
    const geom = (ci: number, k: number) => ({
      n: 1,
      ci,
      h: 8,
      w: 8,
      co: 4,
      kh: k,
      kw: k,
      s: 1,
      p: 0,
      ho: 8,
      wo: 8,
    });
    expect(fwdFlatK(geom(3, 7), 16)).toBe(true); // 147 → 10 tiles instead of 49
    expect(fwdFlatK(geom(3, 7), 32)).toBe(true); // the H200 tensor-core tile: 5 instead of 49
    expect(fwdFlatK(geom(64, 3), 16)).toBe(false); // every 3×3 layer of the RD++ networks: no saving
    expect(fwdFlatK(geom(64, 1), 16)).toBe(false); // one tap
    expect(fwdFlatK(geom(24, 3), 16)).toBe(false); // 14 of 18 tiles: saves less than a quarter
    expect(fwdFlatK(geom(17, 3), 16)).toBe(true); // 10 of 18
    // with the walk left to the rule, the stem runs the flat walk: the same bits as forced flat, and
    // not those of the tap-major walk (another summation order), so the comparison can tell them apart
    const x = tensor(randn(2 * 3 * 21 * 19, 5), [2, 3, 21, 19]);
    const w = tensor(randn(8 * 3 * 49, 6, 0.5), [8, 3, 7, 7]);
    const run = async (flat: boolean | null) => {
      convTuning.flatK = flat;
      const [y] = await readAndDispose(scope(() => conv2d(x, w, null, { stride: 2, padding: 3 })));
      return y!;
    };
    const [auto, flat, tapMajor] = [await run(null), await run(true), await run(false)];
    expect(auto).toEqual(flat);
    expect(auto).not.toEqual(tapMajor);
    x.dispose();
    w.dispose();
  });

  it('the forward split-K really splits, adds the bias once, and CONV_FWD_SPLIT_K turns it off', async () => {
    Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 2, targetWorkgroups: 1000 });
    const dispatchesOfForward = (): number =>
      scope(() => {
        // K = 40 channels: three K tiles of 16
        const x = tensor(randn(2 * 40 * 5 * 5, 3), [2, 40, 5, 5]);
        const w = tensor(randn(7 * 40, 4), [7, 40, 1, 1]);
        const b = tensor(randn(7, 5), [7]);
        const before = runtime().counters.dispatches;
        conv2d(x, w, b);
        return runtime().counters.dispatches - before;
      });
    expect(dispatchesOfForward()).toBe(2); // the GEMM slices + their sum
    const restore = setFlags({ CONV_FWD_SPLIT_K: false });
    try {
      expect(dispatchesOfForward()).toBe(1);
    } finally {
      restore();
    }
    await checkConv({ n: 2, ci: 40, h: 5, w: 5, co: 7, kh: 1, kw: 1, s: 1, p: 0 }, true, 66);
  });

  it('splits K only where it takes fewer waves × K tiles per slice, and as float32 accuracy and memory bound it', () => {
    Object.assign(convTuning, {
      minKTilesPerSplit: 8,
      maxKTilesPerSplit: 256,
      maxSplits: 64,
      targetWorkgroups: 528,
    });
    const slice = 2 ** 20; // bytes per slice of partials: the 256 MiB bound allows 256 slices
    // ResNet-18 inference at 128², batch 32 (traced): 512 tiles nearly fill a wave — K in one pass (it was
    // split in two: two waves of half the K, the same time, and 16 MiB of partials for an 8 MiB output)
    expect(splitCount(512, 36, slice)).toBe(1);
    // 128 tiles: 4 slices are one wave of 1/4 of K; 5 (as before) were 640 workgroups, two waves of 1/5
    expect(splitCount(128, 144, slice)).toBe(4);
    expect(splitCount(256, 72, slice)).toBe(2);
    // batch 1 (16 tiles of a 3×3 512→512 at 16², 288 K tiles): 32 slices fill one wave with 9 K tiles each
    expect(splitCount(16, 288, slice)).toBe(32);
    // not below 8 K tiles per slice, not over maxSplits (64 slices: 157 K tiles each; 61, within 1/16: 164)
    expect(splitCount(1, 40, slice)).toBe(5);
    expect(splitCount(1, 10_000, slice)).toBe(61);
    // float32 accuracy: at most 256 K tiles per slice even when the tiles fill the GPU many times over (64
    // slices round to whole waves 3 % faster than 3 — noise, not worth 21 times the partials)…
    expect(splitCount(4096, 576, slice)).toBe(3);
    // …unless the partial buffer's bound (256 MiB, or the adapter's binding limit) cannot hold the slices
    const bound = Math.min(
      convTuning.maxPartialBytes,
      runtime().gpu.report.limits.maxStorageBufferBindingSize,
    );
    expect(splitCount(4096, 576, bound / 2)).toBe(2);
    expect(splitCount(4096, 576, bound + 1)).toBe(1);
  });

  it("builds a GEMM kernel's WGSL only when the runtime compiles it, not at every dispatch", () => {
    // every conv dispatch calls gemmShader; the runtime calls what it returns only on a pipeline-cache miss.
    // Building the text at the call took ~40 µs per conv dispatch (12 % of recording an inference pass).
    const operand = { mode: 'row' as const, wgsl: (p: string) => `// operand ${p}` };
    const spec: GemmSpec = { tile: DEFAULT_TILE, ctx: '', a: operand, b: operand, store: '', fast: 'm' };
    const reads: string[] = [];
    const watched = new Proxy(spec, {
      get(target, key) {
        reads.push(String(key));
        return target[key as keyof GemmSpec];
      },
    });
    const wgsl = gemmShader(watched);
    expect(reads).toEqual(['tile']); // the tile is checked at once: a bad tile still throws at the call
    expect(wgsl('// header')).toMatch(/^\/\/ header\nconst BM = 64u;[\s\S]*\/\/ operand a[\s\S]*fn main/);
    expect(reads.length).toBeGreaterThan(1);
    expect(() => gemmShader({ ...spec, tile: { bm: 48, bn: 64, bk: 16 } })).toThrow();
  });

  it('GEMM_TILE picks tiles by name or by shape (auto) and names the choices when unknown', () => {
    const restore = setFlags({ GEMM_TILE: 'auto' });
    try {
      // 256 × 1024 outputs: 16 tiles of 128×128 — too few, so the 64×64 tile (64 tiles) and split-K
      expect(gemmTileFor(256, 1024)).toBe(DEFAULT_TILE);
      // a training-size GEMM (16·64·64 pixels × 256 channels): 1024 tiles of 128×128
      expect(gemmTileFor(16 * 64 * 64, 256)).toBe(GEMM_TILES.t128x128);
      setFlags({ GEMM_TILE: 't128x64' });
      expect(gemmTileFor(10, 10)).toBe(GEMM_TILES.t128x64);
      setFlags({ GEMM_TILE: 't99' });
      expect(() => gemmTileFor(10, 10)).toThrow(
        /GEMM_TILE=t99 is not a known tile: use auto or one of t64x64/,
      );
    } finally {
      restore();
    }
  });

  it('every named tile is a valid configuration and invalid ones are explained', () => {
    for (const t of Object.values(GEMM_TILES)) expect(tileProblem(t)).toBeNull();
    expect(tileProblem({ bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 })).toBeNull();
    expect(tileProblem({ bm: 128, bn: 64, bk: 8, tm: 8, tn: 4 })).toMatch(/does not split into 4-row groups/);
    expect(tileProblem({ bm: 128, bn: 128, bk: 8 })).toMatch(/more than 256 invocations/);
  });

  it('SwiftShader is not offered the tiles it loses the device on (more than one 4-row group per invocation)', () => {
    const lavapipe = runtime().gpu.report;
    const swiftShader = {
      ...lavapipe,
      vendor: 'google',
      architecture: 'swiftshader',
      device: '',
      description: '',
    };
    expect(tileStageGroups(GEMM_TILES.t64x64!)).toBe(1);
    expect(tileStageGroups(GEMM_TILES.t128x128!)).toBe(1);
    expect(tileStageGroups(GEMM_TILES.t32x32!)).toBe(2);
    expect(tileStageGroups(GEMM_TILES.t128x64!)).toBe(2);
    for (const [name, tile] of Object.entries(GEMM_TILES)) {
      expect(tileAdapterProblem(lavapipe, tile, 'f32'), name).toBeNull();
      const problem = tileAdapterProblem(swiftShader, tile, 'f32');
      if (tileStageGroups(tile) > 1)
        expect(problem, name).toMatch(/SwiftShader .* use t64x64 or t128x128 there$/);
      else expect(problem, name).toBeNull();
    }
    // the same 32×32 block with BK 8 stages one group: SwiftShader runs it
    expect(tileAdapterProblem(swiftShader, { bm: 32, bn: 32, bk: 8 }, 'f32')).toBeNull();
    // GEMM_TILE=auto does not pick them there either: a GEMM that fills the GPU with 128×64 tiles only
    const T = convTuning.targetWorkgroups;
    const [M, N] = [64 * Math.ceil(T / 2) * 2, 128];
    const restore = setFlags({ GEMM_TILE: 'auto' });
    const report = runtime().gpu.report as { architecture: string };
    const architecture = report.architecture;
    try {
      expect(gemmTileFor(M, N)).toBe(GEMM_TILES.t128x64);
      report.architecture = 'swiftshader';
      expect(gemmTileFor(M, N)).toBe(DEFAULT_TILE);
      expect(gemmTileFor(16 * 64 * 64, 256)).toBe(GEMM_TILES.t128x128); // one group: still offered
    } finally {
      report.architecture = architecture;
      restore();
    }
  });

  it('a double-buffered tile stages twice the workgroup memory, and one the device cannot hold is refused by name', () => {
    const single = { bm: 128, bn: 128, bk: 32, tm: 8 as const, tn: 8 as const };
    const double = { ...single, db: true };
    expect(tileSharedBytes(double)).toBe(2 * tileSharedBytes(single));
    expect(tileKey(double)).toBe(`${tileKey(single)}d`);
    expect(tileDeviceProblem(GEMM_TILES.t64x64d!)).toBeNull(); // 17,408 bytes: lavapipe has 32 KiB
    const limit = runtime().gpu.report.limits.maxComputeWorkgroupStorageSize;
    expect(tileSharedBytes(double)).toBeGreaterThan(limit); // 67,584 bytes
    convTuning.tile = double;
    expect(() => gemmTileFor(10, 10)).toThrow(
      new RegExp(
        `forced tile: tile t128x128x32r8x8d stages 67584 bytes of workgroup memory, more than this adapter's ${limit}`,
      ),
    );
    convTuning.tile = null;
    const restore = setFlags({ GEMM_TILE: 't64x64d' });
    try {
      expect(gemmTileFor(10, 10)).toBe(GEMM_TILES.t64x64d);
    } finally {
      restore();
    }
  });

  it('backward helpers match the autograd path', async () => {
    const c: Conv = { n: 2, ci: 3, h: 6, w: 5, co: 4, kh: 3, kw: 3, s: 2, p: 1 };
    const [ho, wo] = outSize(c) as [number, number];
    const x = randn(c.n * c.ci * c.h * c.w, 5);
    const w = randn(c.co * c.ci * 9, 6);
    const g = randn(c.n * c.co * ho * wo, 7);
    const ref = convRef(c, x, w, null, g);
    const [dx, dw] = await readAndDispose(
      ...scope(() => {
        const gt = tensor(g, [c.n, c.co, ho, wo]);
        const xt = tensor(x, [c.n, c.ci, c.h, c.w]);
        const wt = tensor(w, [c.co, c.ci, 3, 3]);
        return [
          conv2dBackwardInput(gt, wt, xt.shape, { stride: 2, padding: 1 }),
          conv2dBackwardWeight(xt, gt, wt.shape, { stride: 2, padding: 1 }),
        ];
      }),
    );
    expect(relErr(dx!, ref.dx)).toBeLessThan(2e-6);
    expect(relErr(dw!, ref.dw)).toBeLessThan(2e-6);
  });
});

describe('convTranspose2d (k2 s2) against a float64 reference', () => {
  const cases: [number, number, number, number, number][] = [
    [1, 3, 4, 5, 2],
    [3, 17, 3, 6, 70],
    [2, 66, 5, 3, 5],
  ];
  // the last case with its forward GEMM (one GEMM, deconvForward) split over K, and on a 128×128 tile
  const split = { minKTilesPerSplit: 1, maxKTilesPerSplit: 2, targetWorkgroups: 1000 };
  const tuned: [string, Partial<typeof convTuning>][] = [
    ['', {}],
    [', split-K', split],
    [', tile t128x128, split-K', { ...split, tile: GEMM_TILES.t128x128! }],
  ];
  const all = [
    ...cases.map((c) => [c, tuned[0]!] as const),
    ...tuned.slice(1).map((t) => [[2, 70, 9, 8, 33] as [number, number, number, number, number], t] as const),
  ];
  all.forEach(([[n, ci, h, wd, co], [what, tuning]], i) => {
    it(`x [${n}, ${ci}, ${h}, ${wd}] → ${co} channels${what}`, async () => {
      Object.assign(convTuning, tuning);
      const x = randn(n * ci * h * wd, 40 + i);
      const w = randn(ci * co * 4, 50 + i, 0.5);
      const g = randn(n * co * 4 * h * wd, 60 + i);
      const ref = deconvRef(n, ci, h, wd, co, x, w, g);
      const xt = leaf(x, [n, ci, h, wd]);
      const wt = leaf(w, [ci, co, 2, 2]);
      const y = scope(() => {
        const y = convTranspose2d(xt, wt);
        expect(y.shape).toEqual([n, co, 2 * h, 2 * wd]);
        backward(y, tensor(g, y.shape));
        return y;
      });
      const [gy, gdx, gdw] = await readAndDispose(y, xt.grad, wt.grad);
      expect(relErr(gy!, ref.y), 'y').toBeLessThan(2e-6);
      expect(relErr(gdx!, ref.dx), 'dx').toBeLessThan(2e-6);
      expect(relErr(gdw!, ref.dw), 'dw').toBeLessThan(2e-6);
      xt.dispose();
      wt.dispose();
    });
  });
});

describe('convTranspose2dFused: deconv → batch norm (running stats) → + residual → ReLU in one kernel', () => {
  const [n, ci, h, wd, co] = [2, 37, 3, 5, 6];
  const x = randn(n * ci * h * wd, 71);
  const w = randn(ci * co * 4, 72, 0.5);
  const gamma = randn(co, 73);
  const beta = randn(co, 74);
  const mean = randn(co, 75);
  const variance = randn(co, 76).map((v) => 0.5 + v * v);
  const res = randn(n * co * 4 * h * wd, 77);
  const eps = 1e-3;
  const hw = 4 * h * wd;
  const reference = (o: { bn: boolean; residual: boolean; relu: boolean }) =>
    deconvRef(n, ci, h, wd, co, x, w, new Float32Array(n * co * hw)).y.map((v, i) => {
      const ch = Math.floor(i / hw) % co;
      let z = o.bn ? ((v - mean[ch]!) / Math.sqrt(variance[ch]! + eps)) * gamma[ch]! + beta[ch]! : v;
      if (o.residual) z += res[i]!;
      return o.relu ? Math.max(z, 0) : z;
    });
  const run = async (o: {
    bn: boolean;
    residual: boolean;
    relu: boolean;
  }): Promise<[Float32Array, number]> => {
    const before = runtime().counters.dispatches;
    const y = scope(() =>
      noGrad(() =>
        convTranspose2dFused(tensor(x, [n, ci, h, wd]), tensor(w, [ci, co, 2, 2]), {
          ...(o.bn
            ? {
                bn: {
                  weight: tensor(gamma, [co]),
                  bias: tensor(beta, [co]),
                  runningMean: tensor(mean, [co]),
                  runningVar: tensor(variance, [co]),
                  eps,
                },
              }
            : {}),
          ...(o.residual ? { residual: tensor(res, [n, co, 2 * h, 2 * wd]) } : {}),
          relu: o.relu,
        }),
      ),
    );
    const dispatches = runtime().counters.dispatches - before;
    const [out] = await readAndDispose(y);
    return [out!, dispatches];
  };
  const combos = [
    { bn: true, residual: false, relu: true },
    { bn: true, residual: false, relu: false },
    { bn: true, residual: true, relu: true },
    { bn: false, residual: false, relu: true },
  ];
  for (const o of combos) {
    const name = Object.entries(o)
      .filter(([, v]) => v)
      .map(([k]) => k)
      .join(' + ');
    it(`${name}: one pass and after split-K`, async () => {
      const want = reference(o);
      const restore = setFlags({ CONV_FWD_SPLIT_K: false });
      try {
        const [direct, count] = await run(o);
        expect(count).toBe(1); // the GEMM with its epilogue: no weight copy, no separate norm
        expect(relErr(direct, want)).toBeLessThan(2e-6);
      } finally {
        restore();
      }
      Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 1, targetWorkgroups: 1000 });
      const [split, count] = await run(o);
      expect(count).toBe(2); // + the slice sum, which applies the epilogue
      expect(relErr(split, want)).toBeLessThan(2e-6);
    });
  }

  it('refuses inputs that need a gradient, and batch-norm vectors of the wrong size', () => {
    const xt = leaf(x, [n, ci, h, wd]);
    const wt = tensor(w, [ci, co, 2, 2]);
    expect(() => scope(() => convTranspose2dFused(xt, wt, { relu: true }))).toThrow(
      /convTranspose2dFused: an input requires a gradient, and the fused epilogue has none/,
    );
    const v = tensor(new Float32Array(4), [4]);
    expect(() =>
      noGrad(() =>
        convTranspose2dFused(xt, wt, { bn: { weight: v, bias: v, runningMean: v, runningVar: v } }),
      ),
    ).toThrow(/batch-norm weight \S+ must be \[6\] \(the output channels\)/);
    for (const t of [xt, wt, v]) t.dispose();
  });
});

describe('matmul against a float64 reference', () => {
  const cases: [number, number, number][] = [
    [1, 1, 1],
    [5, 7, 3],
    [70, 33, 130],
    [65, 129, 17],
  ];
  for (const [M, K, N] of cases) {
    it(`[${M}, ${K}] × [${K}, ${N}] with dA and dB`, async () => {
      const a = randn(M * K, M + K);
      const b = randn(K * N, N + 3);
      const g = randn(M * N, 11);
      const { y, da, db } = matmulRef(M, K, N, a, b, g);
      const at = leaf(a, [M, K]);
      const bt = leaf(b, [K, N]);
      const yt = scope(() => {
        const y = matmul(at, bt);
        backward(y, tensor(g, [M, N]));
        return y;
      });
      const [gy, gda, gdb] = await readAndDispose(yt, at.grad, bt.grad);
      expect(relErr(gy!, y)).toBeLessThan(2e-6);
      expect(relErr(gda!, da)).toBeLessThan(2e-6);
      expect(relErr(gdb!, db)).toBeLessThan(2e-6);
      at.dispose();
      bt.dispose();
    });
  }

  it('split-K dB over a long K', async () => {
    Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 2 });
    const [M, K, N] = [150, 6, 5];
    const a = randn(M * K, 1);
    const g = randn(M * N, 2);
    const db = new Float64Array(K * N);
    for (let i = 0; i < M; i++)
      for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) db[k * N + j]! += a[i * K + k]! * g[i * N + j]!;
    const at = tensor(a, [M, K]);
    const bt = leaf(randn(K * N, 3), [K, N]);
    scope(() => backward(matmul(at, bt), tensor(g, [M, N])));
    const [gdb] = await readAndDispose(bt.grad);
    expect(relErr(gdb!, db)).toBeLessThan(2e-6);
    at.dispose();
    bt.dispose();
  });
});

describe('conv2dFused: conv → batch norm (running stats) → + residual → ReLU in one kernel', () => {
  const { c, ho, wo, x, w, b, gamma, beta, mean, variance, res, eps, reference } = fusedCase();

  async function fused(o: {
    bias: boolean;
    bn: boolean;
    residual: boolean;
    relu: boolean;
  }): Promise<Float32Array> {
    const t = scope(() =>
      conv2dFused(
        tensor(x, [c.n, c.ci, c.h, c.w]),
        tensor(w, [c.co, c.ci, 3, 3]),
        o.bias ? tensor(b, [c.co]) : null,
        { stride: 1, padding: 1 },
        {
          ...(o.bn
            ? {
                bn: {
                  weight: tensor(gamma, [c.co]),
                  bias: tensor(beta, [c.co]),
                  runningMean: tensor(mean, [c.co]),
                  runningVar: tensor(variance, [c.co]),
                  eps,
                },
              }
            : {}),
          ...(o.residual ? { residual: tensor(res, [c.n, c.co, ho, wo]) } : {}),
          relu: o.relu,
        },
      ),
    );
    const [out] = await readAndDispose(t);
    return out!;
  }

  const combos = [
    { bias: true, bn: true, residual: false, relu: true },
    { bias: false, bn: true, residual: false, relu: false },
    { bias: true, bn: true, residual: true, relu: true },
    { bias: false, bn: false, residual: true, relu: false },
    { bias: false, bn: false, residual: false, relu: true },
  ];
  for (const o of combos) {
    const name = Object.entries(o)
      .filter(([, v]) => v)
      .map(([k]) => k)
      .join(' + ');
    it(`${name}: one pass and after split-K`, async () => {
      const want = reference(o);
      const dispatches = async (): Promise<[Float32Array, number]> => {
        const before = runtime().counters.dispatches;
        const out = await fused(o);
        return [out, runtime().counters.dispatches - before];
      };
      const restore = setFlags({ CONV_FWD_SPLIT_K: false });
      try {
        const [direct, n] = await dispatches();
        expect(n).toBe(2); // a 3×3 conv: the weight transpose and the GEMM with its epilogue, nothing else
        expect(relErr(direct, want)).toBeLessThan(2e-6);
      } finally {
        restore();
      }
      Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 4, targetWorkgroups: 1000 });
      const [split, n] = await dispatches();
      expect(n).toBe(3); // + the slice sum, which applies the epilogue
      expect(relErr(split, want)).toBeLessThan(2e-6);
    });
  }

  it('refuses inputs that need a gradient, and batch-norm vectors of the wrong size', () => {
    const xt = leaf(x, [c.n, c.ci, c.h, c.w]);
    const wt = tensor(w, [c.co, c.ci, 3, 3]);
    expect(() => scope(() => conv2dFused(xt, wt, null, { padding: 1 }, { relu: true }))).toThrow(
      /an input requires a gradient, and the fused epilogue has none/,
    );
    // under noGrad nothing is recorded, so the same call is fine
    noGrad(() => conv2dFused(xt, wt, null, { padding: 1 }, { relu: true })).dispose();
    const v = tensor(new Float32Array(4), [4]);
    expect(() =>
      scope(() =>
        conv2dFused(
          tensor(x, [c.n, c.ci, c.h, c.w]),
          wt,
          null,
          { padding: 1 },
          {
            bn: { weight: v, bias: v, runningMean: v, runningVar: v },
          },
        ),
      ),
    ).toThrow(/batch-norm weight \S+ must be \[9\] \(the output channels\)/);
    for (const t of [xt, wt, v]) t.dispose();
  });
});

describe('gradient checks', () => {
  const x = { data: randn(2 * 3 * 5 * 6, 1), shape: [2, 3, 5, 6] };
  const w = { data: randn(4 * 3 * 3 * 3, 2, 0.5), shape: [4, 3, 3, 3] };
  const b = { data: randn(4, 3), shape: [4] };
  it('conv2d 3×3 s1 p1 with bias', async () => {
    const { errors } = await gradcheck((xx, ww, bb) => conv2d(xx, ww!, bb!, { padding: 1 }), [x, w, b]);
    expect(errors.length).toBe(3);
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });
  it('conv2d 3×3 s2 p1 without bias', async () => {
    const { errors } = await gradcheck((xx, ww) => conv2d(xx, ww!, null, { stride: 2, padding: 1 }), [x, w]);
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });
  it('convTranspose2d', async () => {
    const dx = { data: randn(2 * 3 * 3 * 4, 4), shape: [2, 3, 3, 4] };
    const dw = { data: randn(3 * 5 * 4, 5, 0.5), shape: [3, 5, 2, 2] };
    const { errors } = await gradcheck((xx, ww) => convTranspose2d(xx, ww!), [dx, dw]);
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });
  it('matmul', async () => {
    const a = { data: randn(6 * 5, 6), shape: [6, 5] };
    const bb = { data: randn(5 * 7, 7), shape: [5, 7] };
    const { errors } = await gradcheck((p, q) => matmul(p, q!), [a, bb]);
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });
});

describe('input validation', () => {
  const t = (shape: number[]) => tensor(new Float32Array(shape.reduce((p, q) => p * q, 1)), shape);
  it('names the op, the tensors and the expectation', () => {
    scope(() => {
      expect(() => conv2d(t([1, 3, 8, 8]), t([4, 5, 3, 3]), null)).toThrow(
        /conv2d: input .*\[1, 3, 8, 8\] has 3 channels but weight .*\[4, 5, 3, 3\] expects 5/,
      );
      expect(() => conv2d(t([1, 3, 8, 8]), t([4, 27]), null)).toThrow(
        /conv2d: weight .*\[4, 27\] must be 4-D/,
      );
      expect(() => conv2d(t([3, 8, 8]), t([4, 3, 3, 3]), null)).toThrow(
        /conv2d: input .*\[3, 8, 8\] must be 4-D/,
      );
      expect(() => conv2d(t([1, 3, 8, 8]), t([4, 3, 3, 3]), t([5]))).toThrow(
        /conv2d: bias .*\[5\] must have shape \[4\]/,
      );
      expect(() => conv2d(t([1, 3, 2, 2]), t([4, 3, 3, 3]), null)).toThrow(/conv2d: .*empty output/);
      expect(() => conv2d(t([1, 3, 8, 8]), t([4, 3, 3, 3]), null, { stride: 0 })).toThrow(/conv2d: stride/);
      expect(() => conv2d(t([1, 3, 8, 8]), t([4, 3, 3, 3]), null, { padding: -1 })).toThrow(
        /conv2d: padding/,
      );
      expect(() => convTranspose2d(t([1, 3, 4, 4]), t([4, 5, 2, 2]))).toThrow(
        /convTranspose2d: input .*\[1, 3, 4, 4\] has 3 channels but weight .*\[4, 5, 2, 2\] expects 4/,
      );
      expect(() => convTranspose2d(t([1, 3, 4, 4]), t([3, 5, 3, 3]))).toThrow(
        /convTranspose2d: weight .*\[Cin, Cout, 2, 2\]/,
      );
      expect(() => matmul(t([2, 3]), t([4, 5]))).toThrow(/matmul: inner dimensions differ/);
      expect(() => matmul(t([2, 3, 1]), t([3, 5]))).toThrow(/matmul: operands must be 2-D/);
    });
  });

  it('records nothing and leaks nothing when an op throws', () => {
    const before = runtime().pool.snapshot().liveBytes;
    scope(() => {
      expect(() => conv2d(t([1, 3, 8, 8]), t([4, 5, 3, 3]), null)).toThrow();
    });
    expect(runtime().pool.snapshot().liveBytes).toBe(before);
  });
});
