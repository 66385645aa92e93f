/**
 * End-to-end benchmarks and profiles: one RD++ training step (teacher on clean + noisy images,
 * projections, losses, OCBE, decoder, backward, both Adam updates) and inference (anomaly maps + scores).
 *
 * `benchE2e` reports what a user feels: median wall time per step or batch, images/s, peak GPU memory
 * (live tensors, and everything the pool holds), and the runtime's own counters per step — dispatches,
 * submits, buffers and bind groups created (0 once warm), CPU time spent recording. `profileE2e` runs the
 * same workload again with timestamp queries around every dispatch and adds GPU time per program.
 * Weights are formula weights: speed does not depend on them.
 */
import {
  Adam,
  adapterLine,
  backward,
  DispatchProfiler,
  type DType,
  flag,
  frozenActivationDtype,
  GraphCache,
  gemmPrecision,
  gemmTileSource,
  mmaStatus,
  type PackedWeights,
  type Precision,
  type ProgramTiming,
  rowPermutation,
  runtime,
  scope,
  type Tensor,
  tensor,
  trainingActivationDtype,
} from '../src/engine/index.js';
import { Rdpp, type SsotMode } from '../src/model/rdpp.js';
import { KerasResnet50Teacher } from '../src/model/teacher/keras-resnet50.js';
import { type Teacher, TorchvisionTeacher } from '../src/model/teacher/torchvision.js';
import { trainingState } from '../src/train/trainer.js';

export type BenchTeacher = 'wrn50' | 'resnet18' | 'resnet50-keras';

export interface E2eOptions {
  teacher: BenchTeacher;
  batch: number;
  imageSize: number;
  iters: number;
  warmup: number;
  ssot?: SsotMode;
}

export interface E2eResult {
  kind: 'train' | 'infer';
  adapter: string;
  date: string;
  /** the GEMMs' operand precision the run used (the flag PRECISION after the shader-f16 check) */
  precision: Precision;
  /** whether the f16 GEMMs ran on subgroup matrices (tensor cores), and which (engine/mma.ts) */
  mma: string;
  /** where the GEMM tiles came from: a table `rdpp tune` made on this adapter, or the flag GEMM_TILE */
  gemm_tiles: string;
  teacher: BenchTeacher;
  ssot: SsotMode;
  batch: number;
  imageSize: number;
  iters: number;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  images_per_s: number;
  /**
   * the time per step (batch) of `iters` steps recorded back to back with one wait at the end: what a
   * training run sees (the trainer reads a step's losses while the next one runs) and `rdpp test` too (it
   * reads a batch's maps while the next one runs). median_ms is one step with the GPU idle before it (the
   * CPU records its first commands) and after it (the wait); on a GPU the difference is that idle time
   */
  pipelined_ms_per_step: number;
  pipelined_images_per_s: number;
  /** the most bytes held by live tensors at once (PyTorch's max_memory_allocated) */
  peak_gpu_mib: number;
  /** the most bytes the buffer pool held on the device (live + idle; PyTorch's max_memory_reserved) */
  peak_reserved_mib: number;
  /** live bytes between steps: weights, optimizer state (the rest of the peak is activations and gradients) */
  resident_mib: number;
  /**
   * of resident_mib, the conv weights' GEMM-layout copies kept between calls (the flag KEEP_PACKED_WEIGHTS,
   * named in packed_weights; engine/derived.ts)
   */
  packed_weights_mib: number;
  packed_weights: PackedWeights;
  /** whether aligned GEMM operands were read with vec4 loads (the flag GEMM_VEC4) */
  gemm_vec4: boolean;
  /**
   * the storage type of the activations no gradient reads — the teacher's, the whole model's in inference
   * (f16 under --precision f16 unless F16_STORAGE=0)
   */
  frozen_activations: DType;
  /**
   * train: the storage type of the student's activations (f16 under --precision f16 unless
   * F16_TRAIN_STORAGE=0 or F16_STORAGE=0); infer: null
   */
  training_activations: DType | null;
  /**
   * train: the bytes live at the end of the forward pass above those live before it — the activations and
   * statistics the backward reads, the losses, the teacher's taps (PyTorch's saved tensors); infer: null
   */
  saved_for_backward_mib: number | null;
  dispatches_per_step: number;
  submits_per_step: number;
  buffers_created_per_step: number;
  bind_groups_created_per_step: number;
  /** CPU time to record one step or batch (the synchronous part, before waiting for the GPU), mean */
  record_ms_per_step: number;
  /**
   * the same, median: garbage-collection pauses land in some recordings (on lavapipe's 2 cores, 10–40 ms
   * scavenges of the garbage Dawn's Node bindings make while a wait polls), which the mean counts
   */
  record_ms_median: number;
  /**
   * whether the timed batches (steps) were replayed from a captured graph (the flag GRAPH_CAPTURE for
   * infer, TRAIN_GRAPH_CAPTURE for train; engine/graph.ts; the first run of a shape goes op by op, the
   * second is captured: two warm-up runs), and the bytes that graph holds (its working set, counted in
   * resident_mib and peak_gpu_mib: live while the graph exists)
   */
  graph_capture: boolean;
  graph_mib: number | null;
}

export interface ProfileResult extends E2eResult {
  /** whether GPU times come from timestamp queries (false: the adapter has none; gpu_ms_per_step null) */
  timestamps: boolean;
  wall_ms_per_step: number;
  gpu_ms_per_step: number | null;
  peak_bytes: number;
  programs: {
    name: string;
    calls: number;
    gpu_ms: number;
    /** per step */
    calls_per_step: number;
    gpu_ms_per_step: number;
    share: number;
    tflops: number | null;
    gbps: number | null;
  }[];
}

function makeModel(teacher: BenchTeacher): Rdpp {
  const t: Teacher =
    teacher === 'resnet50-keras'
      ? new KerasResnet50Teacher()
      : new TorchvisionTeacher(teacher === 'wrn50' ? 'wide_resnet50_2' : 'resnet18');
  t.state.initFormula('encoder.');
  const m = new Rdpp(t);
  for (const [p, s] of [
    ['bn.', m.ocbe.state],
    ['decoder.', m.decoder.state],
    ['proj.', m.proj.state],
  ] as const)
    s.initFormula(p);
  return m;
}

/** One training step or inference batch, ready to be run again and again. */
export function workload(
  kind: 'train' | 'infer',
  o: E2eOptions,
): {
  once: () => void;
  dispose: () => void;
  savedBytes: () => number | null;
  graphBytes: () => number | null;
} {
  const ssot = o.ssot ?? 'official';
  const m = makeModel(o.teacher);
  // the model as `rdpp test` / `predict` load it (conv weights packed once: Rdpp.packForInference), or as
  // `rdpp train` runs it (the teacher's packed: Rdpp.packTeacher)
  if (kind === 'infer') m.packForInference();
  else m.packTeacher();
  const shape = [o.batch, 3, o.imageSize, o.imageSize];
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i * 0.37));
  // inference has no optimizer (its moments would count as memory it does not need)
  const groups = kind === 'train' ? m.parameterGroups() : null;
  const optA = groups ? new Adam(groups.proj, { lr: 1e-3, betas: [0.5, 0.999] }) : null;
  const optB = groups ? new Adam(groups.ocbeDecoder, { lr: 5e-3, betas: [0.5, 0.999] }) : null;
  const perm = [...Array(o.batch).keys()].map((i) => (i + 1) % o.batch);
  // inference as `rdpp test` runs it: replayed from a graph after two batches (GRAPH_CAPTURE)
  const scorer = kind === 'infer' ? m.scorer() : null;
  let saved: number | null = null;
  /** one training step (both updates), as the trainer's window graph holds it with accumulate 1 */
  const trainStep = ([x, xn, p, inverse, sA, sB]: Tensor[]): Tensor[] => {
    const pool = runtime().pool;
    const before = pool.snapshot().liveBytes;
    const loss = scope(() => {
      const f = m.trainForward(x!, xn!, { perm: p!, inverse: inverse! }, ssot);
      saved = pool.snapshot().liveBytes - before;
      backward(f.loss);
      return f.loss;
    });
    optA!.stepWith(sA!);
    optB!.stepWith(sB!);
    optA!.zeroGrad();
    optB!.zeroGrad();
    return [loss];
  };
  // training as `rdpp train` runs it: replayed from a graph after two steps (TRAIN_GRAPH_CAPTURE)
  const steps =
    kind === 'train'
      ? new GraphCache(trainStep, {
          enabled: () => flag('TRAIN_GRAPH_CAPTURE'),
          state: () => new Set(trainingState(m, [optA!, optB!])),
        })
      : null;
  const once = () => {
    if (kind === 'train') {
      const pairing = rowPermutation(perm);
      const inputs = [
        tensor(data, shape),
        tensor(data, shape),
        pairing.perm,
        pairing.inverse,
        tensor(optA!.nextScalars(), [2 * optA!.params.length]),
        tensor(optB!.nextScalars(), [2 * optB!.params.length]),
      ];
      for (const t of steps!.run(inputs)) t.dispose();
      for (const t of inputs) t.dispose();
      optA!.countSteps();
      optB!.countSteps();
    } else {
      scope(() => {
        scorer!.maps(tensor(data, shape));
      });
    }
  };
  return {
    once,
    savedBytes: () => saved,
    graphBytes: () => (steps ? (steps.current?.bytes ?? null) : (scorer?.graphBytes() ?? null)),
    dispose: () => {
      steps?.dispose();
      scorer?.dispose();
      optA?.dispose();
      optB?.dispose();
      m.dispose();
    },
  };
}

function stats(times: number[]): { median: number; min: number; max: number } {
  const s = [...times].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
}

const MIB = 2 ** 20;
const mib = (bytes: number | null) => (bytes === null ? null : +(bytes / MIB).toFixed(1));

/** Time `iters` runs after `warmup` and report wall time, memory and per-step counters. */
async function measure(
  o: E2eOptions,
  run: () => void,
  savedBytes: () => number | null,
  graphBytes: () => number | null,
): Promise<
  Omit<
    E2eResult,
    | 'kind'
    | 'adapter'
    | 'date'
    | 'precision'
    | 'mma'
    | 'gemm_tiles'
    | 'teacher'
    | 'ssot'
    | 'batch'
    | 'imageSize'
  > & {
    peakBytes: number;
  }
> {
  const rt = runtime();
  for (let i = 0; i < o.warmup; i++) {
    run();
    await rt.sync();
  }
  // the timed batches are replays when warm-up left a graph (GraphCache: eager, capture, then replays)
  const replayed = graphBytes() !== null;
  rt.pool.resetPeak();
  const resident = rt.pool.snapshot().liveBytes;
  const packed = rt.derived.stats().bytes;
  const c0 = { ...rt.counters };
  const m0 = rt.pool.snapshot();
  const times: number[] = [];
  const records: number[] = [];
  for (let i = 0; i < o.iters; i++) {
    const t0 = performance.now();
    run();
    records.push(performance.now() - t0);
    await rt.sync();
    times.push(performance.now() - t0);
  }
  const m1 = rt.pool.snapshot();
  const c1 = { ...rt.counters };
  // then the same steps back to back (not counted above)
  const tp = performance.now();
  for (let i = 0; i < o.iters; i++) run();
  await rt.sync();
  const pipelined = (performance.now() - tp) / o.iters;
  const per = (a: number, b: number) => +((b - a) / o.iters).toFixed(2);
  const s = stats(times);
  return {
    iters: o.iters,
    median_ms: +s.median.toFixed(3),
    min_ms: +s.min.toFixed(3),
    max_ms: +s.max.toFixed(3),
    images_per_s: +((o.batch * 1000) / s.median).toFixed(2),
    pipelined_ms_per_step: +pipelined.toFixed(3),
    pipelined_images_per_s: +((o.batch * 1000) / pipelined).toFixed(2),
    peak_gpu_mib: +(m1.peakLiveBytes / MIB).toFixed(1),
    peak_reserved_mib: +(m1.peakReservedBytes / MIB).toFixed(1),
    resident_mib: +(resident / MIB).toFixed(1),
    packed_weights_mib: +(packed / MIB).toFixed(1),
    packed_weights: flag('KEEP_PACKED_WEIGHTS'),
    gemm_vec4: flag('GEMM_VEC4'),
    frozen_activations: frozenActivationDtype(),
    training_activations: savedBytes() === null ? null : trainingActivationDtype(),
    saved_for_backward_mib: mib(savedBytes()),
    dispatches_per_step: per(c0.dispatches, c1.dispatches),
    submits_per_step: per(c0.submits, c1.submits),
    buffers_created_per_step: per(m0.createdBuffers, m1.createdBuffers),
    bind_groups_created_per_step: per(c0.bindGroups, c1.bindGroups),
    record_ms_per_step: +(records.reduce((a, b) => a + b, 0) / o.iters).toFixed(3),
    record_ms_median: +stats(records).median.toFixed(3),
    graph_capture: replayed,
    graph_mib: mib(graphBytes()),
    peakBytes: m1.peakLiveBytes,
  };
}

export async function benchE2e(kind: 'train' | 'infer', o: E2eOptions): Promise<E2eResult> {
  const rt = runtime();
  const w = workload(kind, o);
  try {
    const { peakBytes: _, ...r } = await measure(o, w.once, w.savedBytes, w.graphBytes);
    return {
      kind,
      adapter: adapterLine(rt.gpu.report),
      date: new Date().toISOString(),
      precision: gemmPrecision(),
      mma: mmaStatus(),
      gemm_tiles: gemmTileSource(),
      teacher: o.teacher,
      ssot: o.ssot ?? 'official',
      batch: o.batch,
      imageSize: o.imageSize,
      ...r,
    };
  } finally {
    w.dispose();
  }
}

/**
 * The benchmark, then the same number of runs with a timestamp query around every dispatch: GPU time,
 * calls and achieved FLOP/s or bytes/s per program (where the op declares its cost).
 */
export async function profileE2e(kind: 'train' | 'infer', o: E2eOptions): Promise<ProfileResult> {
  const rt = runtime();
  const w = workload(kind, o);
  try {
    const { peakBytes, ...r } = await measure(o, w.once, w.savedBytes, w.graphBytes);
    const base: E2eResult = {
      kind,
      adapter: adapterLine(rt.gpu.report),
      date: new Date().toISOString(),
      precision: gemmPrecision(),
      mma: mmaStatus(),
      gemm_tiles: gemmTileSource(),
      teacher: o.teacher,
      ssot: o.ssot ?? 'official',
      batch: o.batch,
      imageSize: o.imageSize,
      ...r,
    };
    let programs: ProgramTiming[] = [];
    const timestamps = DispatchProfiler.supported(rt.device);
    if (timestamps) {
      const prof = new DispatchProfiler(rt.device);
      await rt.sync();
      rt.profiler = prof;
      try {
        for (let i = 0; i < o.iters; i++) {
          w.once();
          await rt.sync();
        }
        await prof.drain();
        programs = prof.programs();
      } finally {
        rt.profiler = null;
        prof.dispose();
      }
    }
    const gpuTotal = programs.reduce((a, p) => a + p.gpuMs, 0);
    return {
      ...base,
      timestamps,
      wall_ms_per_step: base.median_ms,
      gpu_ms_per_step: timestamps ? +(gpuTotal / o.iters).toFixed(3) : null,
      peak_bytes: peakBytes,
      programs: programs.map((p) => ({
        name: p.name,
        calls: p.calls,
        gpu_ms: +p.gpuMs.toFixed(4),
        calls_per_step: +(p.calls / o.iters).toFixed(2),
        gpu_ms_per_step: +(p.gpuMs / o.iters).toFixed(4),
        share: gpuTotal > 0 ? +(p.gpuMs / gpuTotal).toFixed(4) : 0,
        tflops: p.flops > 0 && p.gpuMs > 0 ? +(p.flops / (p.gpuMs * 1e9)).toPrecision(4) : null,
        gbps: p.bytes > 0 && p.gpuMs > 0 ? +(p.bytes / (p.gpuMs * 1e6)).toPrecision(4) : null,
      })),
    };
  } finally {
    w.dispose();
  }
}
