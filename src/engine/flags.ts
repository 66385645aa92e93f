/**
 * Every behaviour switch of the engine, in one typed place (after tfjs's flags_webgpu.ts).
 *
 * Each flag is documented where it is defined, read through `flag()`, overridable from tests with
 * `setFlags()` and, in Node, from the environment as `RDPP_<NAME>` (see platform/node.ts, which calls
 * `flagsFromEnv`). The engine never reads `process.env` itself: it must run unchanged in the browser.
 */
/** Operand precision of the GEMMs (see the flag PRECISION). */
export type Precision = 'f32' | 'f16';

export const PRECISIONS: readonly Precision[] = ['f32', 'f16'];

/** Whether the GEMMs use subgroup matrices (see the flag GEMM_MMA). */
export type MmaMode = 'auto' | 'on' | 'off' | 'emulate';

export const MMA_MODES: readonly MmaMode[] = ['auto', 'on', 'off', 'emulate'];

/** How Node waits for the GPU (see the flag DAWN_POLL). */
export type DawnPoll = 'auto' | 'spin' | 'timer';

export const DAWN_POLLS: readonly DawnPoll[] = ['auto', 'spin', 'timer'];

/** Which conv weights keep their GEMM-layout copy between calls (see the flag KEEP_PACKED_WEIGHTS). */
export type PackedWeights = 'stable' | 'frozen' | 'off';

export const PACKED_WEIGHTS: readonly PackedWeights[] = ['stable', 'frozen', 'off'];

export interface Flags {
  /** Print every generated WGSL program once, when it is first compiled. */
  PRINT_SHADERS: boolean;
  /** Log each dispatch's program name and workgroup count (debugging; slow). */
  LOG_DISPATCHES: boolean;
  /** Request Dawn's `allow_unsafe_apis` (needed for `chromium-experimental-subgroup-matrix`). Node only. */
  ALLOW_UNSAFE_APIS: boolean;
  /**
   * Dawn's `skip_validation` (Node only): WebGPU's checks of every command as it is recorded are skipped,
   * which is most of the CPU time of a dispatch (on lavapipe's 2 cores recording a ResNet-18 inference batch
   * took ≈ 15 % less). A mistake those checks would report becomes undefined behaviour instead of an error,
   * so it is off by default; every test passes with it on (lavapipe). A batch-1 WRN50-2 inference is 238
   * dispatches: at ~20 µs of CPU each that alone is most of the 5 ms goal of `--precision f16`.
   */
  DAWN_SKIP_VALIDATION: boolean;
  /**
   * Dawn's `disable_robustness` (Node only): the compiled shaders lose the bounds clamps Tint adds to every
   * array index it cannot prove in range (every GEMM's workgroup-tile reads: one min() per load in the inner
   * loop) and the device its robust buffer access. Every kernel here checks its own bounds, and every test
   * passes with it on (lavapipe); an out-of-range access would be undefined behaviour instead of clamped, so
   * it is off by default until a GPU shows what it gains (scripts/device-check.sh times both).
   */
  DAWN_DISABLE_ROBUSTNESS: boolean;
  /**
   * How Node waits for the GPU (Node only; platform/node.ts). While a read or sync is pending, Dawn's Node
   * bindings poll for it by re-queuing themselves with `setImmediate`: ~120,000 times a second, a busy core
   * and the garbage of every poll (10–40 ms collection pauses on lavapipe). `spin` keeps that: the least
   * latency, right for a GPU, whose waits are short and whose host has cores to spare. `timer` polls by
   * `setTimeout(0)` during the engine's waits instead (at most ~1,000 times a second, up to ~1 ms later):
   * on a CPU adapter (lavapipe, SwiftShader) the polling core is one the kernels themselves run on, and a
   * ResNet-18 training step on lavapipe's 2 cores takes ~40 % less time. `auto` (the default): `timer` on a
   * fallback (CPU) adapter, `spin` on a GPU.
   */
  DAWN_POLL: DawnPoll;
  /**
   * Operand precision of the GEMM family (matmul, conv forward/dgrad/wgrad, transposed conv, split-K,
   * conv2dFused), like PyTorch AMP's autocast: `f16` rounds both operands to f16 where they are staged in
   * workgroup memory and accumulates in f32 (tensor-core numerics); storage, epilogues, norms, losses,
   * Sinkhorn, softmax, cosine and the optimizer stay f32. Needs the device feature `shader-f16`; without
   * it the engine warns once and runs f32. See src/engine/precision.ts and the README's Precision section.
   */
  PRECISION: Precision;
  /**
   * Submit the open command encoder after this many dispatches even if nobody asked: the GPU starts on
   * the first part of a step while the CPU records the rest, and buffers released meanwhile become
   * reusable sooner (lower peak memory). Smaller = earlier start, more submits (~50 µs of CPU each).
   */
  DISPATCHES_PER_SUBMIT: number;
  /**
   * The most bytes the buffer pool may hold on the device (live + idle + pending). Unbounded by default:
   * the pool keeps the working set it has seen, so warm steps allocate nothing. When a new buffer would
   * exceed the cap, least recently used idle buffers are destroyed first (for a GPU shared with others).
   */
  POOL_MAX_RESERVED_BYTES: number;
  /** Check every pipeline for WGSL compile errors with a clear message (costs one async round trip). */
  VALIDATE_SHADERS: boolean;
  /** sinkhornClouds: cost-matrix bytes per chunk of problems (the chunk's tiles live on the GPU at once). */
  SINKHORN_CHUNK_BYTES: number;
  /**
   * The block tile of every GEMM (matmul and the convolution family): a name from GEMM_TILES in
   * shaders/matmul.ts (t64x64, t128x128, t128x64, t64x128, t32x32, and the double-buffered t64x64d,
   * t128x128d, t128x64d, t64x128d), or `auto` to pick per GEMM shape (the
   * largest tile that still gives the GPU enough workgroups). t64x64 is the tile measured on the H200.
   */
  GEMM_TILE: string;
  /**
   * Tensor cores under PRECISION=f16: `auto` runs every GEMM on subgroup matrices (shaders/mma.ts) when the
   * device offers `chromium-experimental-subgroup-matrix` with an f16×f16→f32 configuration and a fixed
   * subgroup size, after checking them on the device against the SIMT f16 kernel (engine/mma.ts) and only
   * if they are also faster than it there (a timed race, engine/mma-check.ts); else the SIMT f16 kernel.
   * `on` uses them whenever they pass the check, faster or not (to benchmark them). `off` never uses them.
   * `emulate` uses the same kernel with the subgroup-matrix builtins written in plain WGSL on any device
   * with shader-f16 (slow: for testing the path on lavapipe).
   */
  GEMM_MMA: MmaMode;
  /**
   * Split the K dimension of forward convolutions over more workgroups when their M×N tiles are too few to
   * fill the GPU (batch-1 inference, deep layers), as the weight gradients already do.
   */
  CONV_FWD_SPLIT_K: boolean;
  /**
   * Under PRECISION=f16 (where it runs f16), the activations no gradient reads are stored in f16: the
   * frozen teacher's (training and inference) and, in evaluation (`test`, `predict`, `bench infer`), the
   * projection's, OCBE's and decoder's too (src/model/frozen.ts). Each fused conv / transposed conv rounds its
   * output once, after batch norm, residual and ReLU ran in f32, and the next GEMM reads that half — the
   * value its f16 staging would have rounded the f32 one to — so only residual adds, instance norms and
   * what the frozen part hands on (the teacher's taps, widened to f32 for the student and the losses; the
   * taps and the decoder's outputs, read as halves by the anomaly maps' cosine) see the extra rounding. Half the bytes for every such activation written and read (AMP's autocast stores them in
   * f16 too). Off: f32 storage as with PRECISION=f32, to measure what it gives.
   */
  F16_STORAGE: boolean;
  /**
   * Under PRECISION=f16 with F16_STORAGE on, training stores the student's activations in f16 as well —
   * the ones its backward reads: every conv and transposed-conv output of the projection, OCBE and decoder,
   * their batch / instance norms' outputs and the residual sums — as AMP's autocast does, and keeps the
   * teacher's taps in f16 (the projection and the cosine losses read them as halves); the statistics,
   * every gradient and the losses stay f32 (the SSOT term's softmax / normalisation take a widened copy,
   * model/rdpp.ts). Half the bytes for each such tensor written, saved and read back. Off: the student
   * trains on f32 activations (its GEMMs still take f16 operands) and the taps are widened for it.
   */
  F16_TRAIN_STORAGE: boolean;
  /**
   * Vectorised (vec4) operand loads in the SIMT GEMM where the operand's 4-row groups are contiguous and
   * aligned: the conv weights of forward and input gradient (channels a multiple of 4: every RD++ conv),
   * the input and upstream gradient of 1×1 stride-1 convs, the 2×2 transposed conv's input — in the SIMT
   * and the tensor-core kernels. Same values, same sums (results are bit-identical either way): only the
   * number of load instructions changes.
   */
  GEMM_VEC4: boolean;
  /**
   * Norms with batch statistics (instance norm; batch norm in training) run statistics and output in one
   * dispatch, and the input gradient in one, where one workgroup item reduces a group whole (src/shaders/
   * norm.ts: stats_apply, grad_dx); off: always three passes each way. Bit-identical results on lavapipe;
   * fewer launches against fewer threads on the elementwise part, which only a GPU can weigh.
   */
  NORM_SINGLE_PASS: boolean;
  /**
   * Which multi-tap conv weights keep their copy in the layout the GEMM reads ([taps, Cin, Cout] for the
   * forward, [taps, Cout, Cin] for a transposed conv) from one call to the next, instead of copying at every
   * call: `frozen` (the default) only weights without a gradient — the teacher, in training and inference
   * —, `stable` also every other weight read where nothing can change it before its next use (evaluation,
   * `test`, `predict`), `off` none. A kept copy is dropped as soon as its weight is written or freed
   * (engine/derived.ts), so it is never stale; it costs memory equal to those weights. WRN50-2 RD++,
   * inference at 256², batch 1, on lavapipe: `frozen` keeps 65 MiB (peak 634 MiB live, against 569 with
   * `off`), `stable` 347 MiB (peak 882), for copies that took under 3 % of the GPU time. A model loaded
   * for inference only (`test`, `predict`, `bench infer`) needs none of this: its weights are stored
   * packed in place of the originals (Rdpp.packForInference), so the flag governs training, the evaluations
   * during training and the browser app.
   */
  KEEP_PACKED_WEIGHTS: PackedWeights;
  /**
   * Replay inference batches from captured graphs (engine/graph.ts, GraphCache): from the third batch of a
   * shape on, `test`, `predict`, the evaluations during training, the browser app and `bench infer` record
   * the captured commands again instead of running the ops' JavaScript (the same dispatches, buffers and
   * results, bit for bit). Off: every batch is recorded op by op.
   */
  GRAPH_CAPTURE: boolean;
  /**
   * Replay training steps from captured graphs (train/trainer.ts): each window of `accumulate` batches —
   * their forward and backward passes, both optimizers' updates and the gradients' release — is recorded
   * op by op for the first window of an epoch shape, captured at the second and replayed after that, with
   * the batches, SSOT pairings and Adam's step scalars as the graph's inputs (the same dispatches, buffers
   * and results, bit for bit). A training step records ~600 (ResNet-18) to ~1,800 (WRN50-2) dispatches,
   * tens of µs of JavaScript each; a replay costs Dawn's three calls per dispatch. Windows that start with
   * gradients carried over from the previous epoch, or hold a smaller last batch, run op by op. The graph
   * holds one window's working set between steps (the memory the pool held anyway), through the
   * evaluations between epochs too. Off: every step is recorded op by op.
   */
  TRAIN_GRAPH_CAPTURE: boolean;
}

const defaults: Flags = {
  PRINT_SHADERS: false,
  LOG_DISPATCHES: false,
  ALLOW_UNSAFE_APIS: false,
  DAWN_SKIP_VALIDATION: false,
  DAWN_DISABLE_ROBUSTNESS: false,
  DAWN_POLL: 'auto',
  PRECISION: 'f32',
  F16_STORAGE: true,
  F16_TRAIN_STORAGE: true,
  DISPATCHES_PER_SUBMIT: 128,
  POOL_MAX_RESERVED_BYTES: Number.POSITIVE_INFINITY,
  VALIDATE_SHADERS: true,
  SINKHORN_CHUNK_BYTES: 512 * 2 ** 20,
  GEMM_TILE: 't64x64',
  GEMM_MMA: 'auto',
  CONV_FWD_SPLIT_K: true,
  GEMM_VEC4: true,
  NORM_SINGLE_PASS: true,
  KEEP_PACKED_WEIGHTS: 'frozen',
  GRAPH_CAPTURE: true,
  TRAIN_GRAPH_CAPTURE: true,
};

const current: Flags = { ...defaults };

/** String flags with a closed set of values, checked when they are parsed from the environment. */
const CHOICES: Partial<Record<keyof Flags, readonly string[]>> = {
  PRECISION: PRECISIONS,
  GEMM_MMA: MMA_MODES,
  KEEP_PACKED_WEIGHTS: PACKED_WEIGHTS,
  DAWN_POLL: DAWN_POLLS,
};

export function flag<K extends keyof Flags>(name: K): Flags[K] {
  return current[name];
}

/** Override flags; returns a function that restores the previous values (for tests). */
export function setFlags(values: Partial<Flags>): () => void {
  const before = { ...current };
  Object.assign(current, values);
  return () => Object.assign(current, before);
}

/** Flags that choose how Node creates Dawn (src/platform/node.ts): meaningless in a browser page. */
export const NODE_DAWN_FLAGS: readonly (keyof Flags)[] = [
  'DAWN_SKIP_VALIDATION',
  'DAWN_DISABLE_ROBUSTNESS',
  'DAWN_POLL',
];

/** `flags` without NODE_DAWN_FLAGS (what a browser page is given). */
export function pageFlags(flags: Partial<Flags>): Partial<Flags> {
  const out = { ...flags };
  for (const k of NODE_DAWN_FLAGS) delete out[k];
  return out;
}

/**
 * Parse `RDPP_<FLAG>` entries of an environment map (booleans: 1/true/0/false; numbers as numbers;
 * strings as given, checked here when they have a closed set of values, else where they are used).
 */
export function flagsFromEnv(env: Record<string, string | undefined>): Partial<Flags> {
  const out: Record<string, boolean | number | string> = {};
  for (const key of Object.keys(defaults) as (keyof Flags)[]) {
    const raw = env[`RDPP_${key}`];
    if (raw === undefined) continue;
    if (typeof defaults[key] === 'boolean') {
      if (!/^(1|0|true|false)$/i.test(raw))
        throw new Error(`RDPP_${key}=${raw}: expected 1, 0, true or false`);
      out[key] = /^(1|true)$/i.test(raw);
    } else if (typeof defaults[key] === 'string') {
      const choices = CHOICES[key];
      if (choices && !choices.includes(raw))
        throw new Error(`RDPP_${key}=${raw}: expected one of ${choices.join(', ')}`);
      out[key] = raw;
    } else {
      const n = Number(raw);
      if (Number.isNaN(n)) throw new Error(`RDPP_${key}=${raw}: expected a number (or Infinity)`);
      out[key] = n;
    }
  }
  return out as Partial<Flags>;
}

export function allFlags(): Readonly<Flags> {
  return { ...current };
}
