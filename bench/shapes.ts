/**
 * Every distinct convolution shape of an RD++ network, timed one by one: the forward, input-gradient and
 * weight-gradient GEMMs a training step runs (at batch 16) and the forwards inference runs (at batch 1
 * and 32), each with how often a step calls it. The shapes are not listed by hand: one training step and
 * one inference at 32×32, batch 2, are traced (traceConvs) and scaled to the requested size — every conv,
 * pool and 2×2 deconv in these networks halves or doubles an even side exactly, so the shapes at 256² are
 * those at 32² times 8. `rdpp bench shapes --teacher wrn50|resnet50-keras|resnet18`.
 *
 * `--tiles all` (or a list of names from GEMM_TILES) times every shape with each GEMM tile: the per-group
 * totals then say what each tile would give a whole step, and `best_tiles` which tile wins each shape — the
 * measurements a per-shape tile table for an adapter is made from.
 */
import {
  type ConvCall,
  type ConvGeom,
  conv2d,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  convTranspose2d,
  convTranspose2dBackwardInput,
  convTuning,
  full,
  noGrad,
  runtime,
  type Tensor,
  tileDeviceProblem,
  traceConvs,
} from '../src/engine/index.js';
import { GEMM_TILES, type GemmTile } from '../src/shaders/matmul.js';
import { type BenchTeacher, workload } from './e2e.js';
import type { BenchCase } from './harness.js';

/** The size the networks are traced at (the smallest every network accepts). */
const TRACE_SIZE = 32;
/** The traced batch: 2, because batch norm in training needs more than one value per channel at 1×1. */
const TRACE_BATCH = 2;

export interface ShapeOptions {
  teacher: BenchTeacher;
  imageSize: number;
  /** batch of the training step (default 16) */
  trainBatch: number;
  /** inference batches (default 1 and 32) */
  inferBatches: number[];
  /** GEMM tiles to time each shape with (names from GEMM_TILES); default: the engine's own choice */
  tiles?: string[];
  /** where to say which tiles are left out (default: stderr / the console's error stream) */
  log?: (line: string) => void;
}

/** The tile names of `--tiles`: `all`, or a comma-separated list of GEMM_TILES names. */
export function parseTiles(spec: string): string[] {
  const names = spec === 'all' ? Object.keys(GEMM_TILES) : spec.split(',').map((t) => t.trim());
  for (const n of names)
    if (!GEMM_TILES[n])
      throw new Error(
        `--tiles: unknown tile '${n}' (use all or some of ${Object.keys(GEMM_TILES).join(', ')})`,
      );
  return names;
}

function withTile<T>(tile: GemmTile | null, fn: () => T): T {
  const before = convTuning.tile;
  convTuning.tile = tile;
  try {
    return fn();
  } finally {
    convTuning.tile = before;
  }
}

/** One distinct GEMM of one workload as traced (batch 2), with its calls per step. */
export interface ConvShape {
  workload: 'train' | 'infer';
  pass: ConvCall['pass'];
  geom: ConvGeom;
  bias: boolean;
  /** the weight has no gradient in the workload (the teacher's): the benchmark's weight has none either */
  frozenWeight: boolean;
  calls: number;
}

function key(c: ConvCall): string {
  const g = c.geom;
  return [c.pass, g.n, g.ci, g.h, g.w, g.co, g.kh, g.kw, g.s, g.p, c.bias, c.frozenWeight].join(',');
}

/** Distinct conv GEMMs of one training step or inference batch at 32², batch 2, with their counts. */
export async function traceWorkload(teacher: BenchTeacher, kind: 'train' | 'infer'): Promise<ConvShape[]> {
  const w = workload(kind, {
    teacher,
    batch: TRACE_BATCH,
    imageSize: TRACE_SIZE,
    iters: 1,
    warmup: 0,
    ssot: 'off',
  });
  try {
    const { calls } = traceConvs(() => w.once());
    await runtime().sync();
    const byKey = new Map<string, ConvShape>();
    for (const c of calls) {
      const k = key(c);
      const s = byKey.get(k);
      if (s) s.calls++;
      else
        byKey.set(k, {
          workload: kind,
          pass: c.pass,
          geom: { ...c.geom },
          bias: c.bias,
          frozenWeight: c.frozenWeight,
          calls: 1,
        });
    }
    return [...byKey.values()];
  } finally {
    w.dispose();
  }
}

/** The geometry at `imageSize` and `batch` of a shape traced at 32², batch 2. */
export function scaleGeom(g: ConvGeom, imageSize: number, batch: number): ConvGeom {
  if (imageSize % TRACE_SIZE !== 0)
    throw new Error(`bench shapes: --image-size must be a multiple of ${TRACE_SIZE}, got ${imageSize}`);
  const f = imageSize / TRACE_SIZE;
  const h = g.h * f;
  const w = g.w * f;
  const ho = Math.floor((h + 2 * g.p - g.kh) / g.s) + 1;
  const wo = Math.floor((w + 2 * g.p - g.kw) / g.s) + 1;
  if (ho !== g.ho * f || wo !== g.wo * f)
    throw new Error(`bench shapes: a ${g.kh}×${g.kw} s${g.s} conv on ${g.h}×${g.w} does not scale by ${f}`);
  return { ...g, n: (g.n / TRACE_BATCH) * batch, h, w, ho, wo };
}

export function convShapeFlops(g: ConvGeom): number {
  return 2 * g.n * g.ho * g.wo * g.co * g.ci * g.kh * g.kw;
}

/**
 * A shape's name: everything that tells it from the workload's other shapes (the fields of `key`), so one
 * name is one shape — tune and best_tiles pair timings by (workload, name). A teacher conv and a student
 * conv of the same sizes and calls differ only in the weight being frozen; a padding other than k/2, a
 * bias, a frozen weight are said where they apply.
 */
function label(s: ConvShape, g: ConvGeom): string {
  const tail = `N${g.n}${s.bias ? ' +bias' : ''}${s.frozenWeight ? ' frozen' : ''} ×${s.calls} (${s.workload})`;
  // a transposed conv is traced in the geometry of the conv it transposes (deconvGeom): name its own
  if (s.pass === 'deconv' || s.pass === 'deconv-dx')
    return `${s.pass.padEnd(5)} convT2x2 s2 ${g.ho}x${g.wo} ${g.co}→${g.ci} ${tail}`;
  const pad = g.p === Math.floor(g.kh / 2) ? '' : ` p${g.p}`;
  const k = `conv${g.kh}x${g.kw}${g.s > 1 ? ` s${g.s}` : ''}${pad}`;
  return `${s.pass.padEnd(5)} ${k} ${g.h}x${g.w} ${g.ci}→${g.co} ${tail}`;
}

/** The inputs of one traced GEMM and its call; input 1 is the weight, except in a weight gradient. */
function body(s: ConvShape, g: ConvGeom): { inputs: number[][]; run: (t: Tensor[]) => Tensor } {
  const xs = [g.n, g.ci, g.h, g.w];
  const ws = [g.co, g.ci, g.kh, g.kw];
  const gs = [g.n, g.co, g.ho, g.wo];
  const opts = { stride: g.s, padding: g.p };
  if (s.pass === 'fwd')
    return {
      inputs: s.bias ? [xs, ws, [g.co]] : [xs, ws],
      run: ([x, w, b]) => conv2d(x!, w!, b ?? null, opts),
    };
  if (s.pass === 'dgrad')
    return { inputs: [gs, ws], run: ([gy, w]) => conv2dBackwardInput(gy!, w!, xs, opts) };
  // x [N, Cin, H, W] and weight [Cin, Cout, 2, 2] of the transposed conv are gs and ws of its conv
  if (s.pass === 'deconv') return { inputs: [gs, ws], run: ([x, w]) => convTranspose2d(x!, w!) };
  // its input gradient: g [N, Cout, 2H, 2W] is xs
  if (s.pass === 'deconv-dx')
    return { inputs: [xs, ws], run: ([gy, w]) => convTranspose2dBackwardInput(gy!, w!, gs) };
  return { inputs: [xs, gs], run: ([x, gy]) => conv2dBackwardWeight(x!, gy!, ws, opts) };
}

/** The named tiles this device can run (workgroup memory); the others are left out, and said so (`say`). */
function tilesThatFit(names: string[], say: (line: string) => void): string[] {
  return names.filter((name) => {
    const problem = tileDeviceProblem(GEMM_TILES[name]!);
    if (problem) say(`shapes: leaving out ${name}: ${problem}`);
    return problem === null;
  });
}

/** Benchmark cases for every distinct conv GEMM of the network's training step and inference. */
export async function shapeCases(o: ShapeOptions): Promise<BenchCase[]> {
  const cases: BenchCase[] = [];
  const say = o.log ?? ((line: string) => console.error(line));
  const tiles: (string | null)[] = o.tiles && o.tiles.length > 0 ? tilesThatFit(o.tiles, say) : [null];
  const add = (s: ConvShape, batch: number) => {
    const g = scaleGeom(s.geom, o.imageSize, batch);
    const b = body(s, g);
    for (const name of tiles) {
      const tile = name === null ? null : GEMM_TILES[name]!;
      cases.push({
        family: `shapes-${o.teacher}`,
        name: label(s, g),
        flops: convShapeFlops(g),
        callsPerStep: s.calls,
        group: `${s.workload} b${batch}${name === null ? '' : ` ${name}`}`,
        ...(name === null ? {} : { tile: name }),
        setup: async () => {
          const ts = b.inputs.map((shape) => full(shape, 0.01));
          // a trainable weight as in the workload: its GEMM-layout copy is made per call, a frozen one's kept
          if (s.pass !== 'wgrad') ts[1]!.requiresGrad = !s.frozenWeight;
          return {
            run: () => withTile(tile, () => noGrad(() => b.run(ts)).dispose()),
            dispose: () => {
              for (const t of ts) t.dispose();
            },
          };
        },
      });
    }
  };
  for (const s of await traceWorkload(o.teacher, 'train')) add(s, o.trainBatch);
  const infer = await traceWorkload(o.teacher, 'infer');
  for (const batch of o.inferBatches) for (const s of infer) add(s, batch);
  return cases;
}
