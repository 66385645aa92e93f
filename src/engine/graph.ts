/**
 * Graphs: the GPU commands of a function captured once, then recorded again for new inputs without
 * running the function (after CUDA graphs and onnxruntime-web's WebGPU graph capture).
 *
 * Why: a batch-1 WRN50-2 RD++ inference is ~240 dispatches, and recording each through the ops (shape
 * checks, tile choice, tensors, cache lookups, uniforms) costs tens of µs of JavaScript: 16–27 ms per
 * batch on lavapipe's 2 cores, more than the 5–10 ms a GPU is given for the whole batch. A replay costs
 * Dawn's three calls per dispatch (setPipeline, setBindGroup, dispatchWorkgroups) and nothing else.
 *
 * What a graph owns:
 *   - its inputs and outputs, tensors of its own: `replay` copies the caller's inputs into them and its
 *     outputs into fresh tensors the caller owns, so a result survives the next replay;
 *   - every intermediate buffer its commands use: born during the capture and back in the pool by its end,
 *     they are claimed from the pool (BufferPool.claim) so nobody else writes them between replays. This is
 *     the working set of one eager run, the memory the pool held anyway; `dispose()` gives it back;
 *   - its uniforms (one buffer, a 256-byte slot per dispatch) and the data uploaded during the capture,
 *     replayed as copies in command order (an uploaded buffer may be reused by a later command);
 *   - nothing else: the buffers it reads without owning them (the weights) are watched (Runtime.watch),
 *     and the first write or free of one makes the graph stale: `replay` refuses, capture again.
 *
 * State (CaptureOptions.state): buffers the caller names as written in place by every run — a training
 * step's parameters, optimizer moments and running statistics. The graph reads and writes them at every
 * replay without owning or watching them: their values may change in between (a checkpoint loaded into
 * them), their buffers must outlive the graph. A replay tells the runtime it writes them (Runtime.invalidate),
 * so copies kept of their data and other graphs that read them (an evaluation's) are dropped as after an
 * eager run.
 *
 * What a captured function must be: a function of its inputs and of buffers that stay as they are (or are
 * its state), issuing the same commands every time. It may not read values back or write a buffer it did
 * not make and that is not its state (both refused). Data it uploads is replayed as it was at the capture:
 * whatever changes from run to run (a batch, a permutation, an optimizer's step scalars) must be an input.
 * A weight copy kept on first use (derived.ts) is made outside the capture and read like the
 * weight. Flags must not change in between (GraphCache keys its graph by them).
 */
import { allFlags, flag } from './flags.js';
import type { DispatchCost } from './profiler.js';
import { align4, type Program, UNIFORM_SLOT } from './program.js';
import { runtime } from './runtime.js';
import { empty, keep, scope, type Tensor } from './tensor.js';

/** A dispatch as `Runtime.replay` records it. */
export interface ReplayDispatch {
  copy?: undefined;
  name: string;
  cost: DispatchCost | undefined;
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  /** the dispatch's dynamic uniform offset, or null without uniforms */
  offsets: number[] | null;
  workgroups: [number, number, number];
}

/** A buffer-to-buffer copy as `Runtime.replay` records it: [src, srcOffset, dst, dstOffset, bytes]. */
export interface ReplayCopy {
  copy: [GPUBuffer, number, GPUBuffer, number, number];
}

export type ReplayOp = ReplayDispatch | ReplayCopy;

type LoggedOp =
  | {
      kind: 'dispatch';
      name: string;
      cost: DispatchCost | undefined;
      pipeline: GPUComputePipeline;
      layout: GPUBindGroupLayout;
      layoutKey: string;
      reads: GPUBuffer[];
      writes: GPUBuffer[];
      uniforms: Uint8Array | null;
      workgroups: [number, number, number];
    }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; bytes: number }
  | { kind: 'write'; dst: GPUBuffer; offset: number; data: Uint8Array };

/** What the runtime logs while a capture is open (Runtime.capture). */
export class CaptureLog {
  readonly ops: LoggedOp[] = [];
  /** buffers the pool handed out during the capture */
  readonly born = new Set<GPUBuffer>();
  /** buffers the pool destroyed during the capture (under its memory cap) */
  readonly gone = new Set<GPUBuffer>();
  /** whether the function tried to read a value back (refused: it would depend on it) */
  readBack = false;

  dispatch(
    p: Program,
    pipeline: GPUComputePipeline,
    layout: GPUBindGroupLayout,
    layoutKey: string,
    uniforms: Uint8Array | null,
    workgroups: [number, number, number],
  ): void {
    this.ops.push({
      kind: 'dispatch',
      name: p.name,
      cost: p.cost,
      pipeline,
      layout,
      layoutKey,
      reads: p.inputs.map((b) => b.buffer),
      writes: p.outputs.map((b) => b.buffer),
      uniforms,
      workgroups,
    });
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.ops.push({ kind: 'copy', src, srcOffset, dst, dstOffset, bytes });
  }

  write(dst: GPUBuffer, offset: number, data: ArrayBufferView): void {
    const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    this.ops.push({ kind: 'write', dst, offset, data: bytes });
  }

  destroyed(buf: GPUBuffer): void {
    this.gone.add(buf);
  }
}

/** What the caller allows a captured function beyond its inputs (see the file header). */
export interface CaptureOptions {
  /** buffers the function writes in place at every run (parameters, optimizer moments, running statistics) */
  state?: ReadonlySet<GPUBuffer>;
}

/** A capture: the graph, or why the function cannot be replayed (its run's outputs are returned either way). */
export type CaptureResult =
  | { graph: CapturedGraph; outputs: Tensor[]; refused?: undefined }
  | {
      graph: null;
      outputs: Tensor[];
      refused: string;
      /** the outputs the function made (the others are tensors it returned without making them) */
      made: Tensor[];
    };

function sameLayout(a: Tensor, b: Tensor): boolean {
  return (
    a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i])
  );
}

export class CapturedGraph {
  private staleWhy: string | null = null;
  private disposed = false;
  private readonly unwatch: (() => void)[] = [];
  /** dispatches per replay */
  readonly dispatches: number;

  private constructor(
    private readonly inputs: Tensor[],
    private readonly outputs: Tensor[],
    private readonly ops: ReplayOp[],
    /** intermediates claimed from the pool */
    private readonly claimed: GPUBuffer[],
    /** the uniform and upload buffers (made here, not pooled) */
    private readonly own: GPUBuffer[],
    external: GPUBuffer[],
    /** state buffers its commands write (CaptureOptions.state) */
    private readonly stateWrites: GPUBuffer[],
  ) {
    this.dispatches = ops.filter((op) => !op.copy).length;
    const rt = runtime();
    for (const b of external)
      this.unwatch.push(
        rt.watch(b, () => this.markStale('a buffer it reads (a weight) was written or freed')),
      );
  }

  /**
   * Run `fn(copies of inputs)` once, as usual, and capture its commands. Returns the graph and this run's
   * outputs (the caller's, like a replay's). Throws, keeping nothing, if `fn` does what a graph cannot
   * replay (see the file header).
   */
  static capture(
    inputs: readonly Tensor[],
    fn: (inputs: Tensor[]) => Tensor[],
    options: CaptureOptions = {},
  ): { graph: CapturedGraph; outputs: Tensor[] } {
    const r = CapturedGraph.tryCapture(inputs, fn, options);
    if (r.graph) return r;
    for (const t of r.made) t.dispose();
    throw new Error(`graph capture: ${r.refused}`);
  }

  /**
   * Like `capture`, but a function that cannot be replayed is not an error: its run already happened (a
   * training step's optimizer update included), so its outputs are returned with the reason instead of a
   * graph, and nothing of the attempt is kept.
   */
  static tryCapture(
    inputs: readonly Tensor[],
    fn: (inputs: Tensor[]) => Tensor[],
    options: CaptureOptions = {},
  ): CaptureResult {
    const rt = runtime();
    if (rt.capture) throw new Error('graph capture: a capture is already open (captures do not nest)');
    const ins = inputs.map((t) => keep(empty(t.shape, t.dtype)));
    ins.forEach((g, i) => {
      rt.copy(inputs[i]!.buffer, 0, g.buffer, 0, align4(g.byteLength));
    });
    const log = new CaptureLog();
    rt.capture = log;
    rt.pool.onAcquire = (b) => log.born.add(b);
    let outs: Tensor[];
    try {
      outs = scope(() => fn(ins));
    } catch (e) {
      for (const t of ins) t.dispose();
      throw e;
    } finally {
      rt.capture = null;
      rt.pool.onAcquire = null;
    }
    const made = outs.filter((t) => log.born.has(t.buffer) || ins.some((i) => i.buffer === t.buffer));
    const owned = ownership(log, ins, outs, made, options.state ?? new Set());
    if (typeof owned === 'string') {
      // the outputs are this run's, the caller's as after an eager run (an input copy returned as an
      // output stays alive: it is the caller's now); the other input copies were only the graph's
      for (const t of ins) if (!made.includes(t)) t.dispose();
      return { graph: null, outputs: outs, refused: owned, made };
    }
    const { ops, own } = compile(log);
    const graph = new CapturedGraph(ins, outs, ops, owned.claimed, own, owned.external, owned.stateWrites);
    return { graph, outputs: graph.copyOutputs() };
  }

  /** Why `replay` would refuse (a buffer it reads changed), or null. */
  get stale(): string | null {
    return this.staleWhy;
  }

  /** Bytes the graph holds on the device: its inputs, outputs and intermediates (uniforms and uploads aside). */
  get bytes(): number {
    let n = 0;
    for (const b of this.claimed) n += b.size;
    for (const t of [...this.inputs, ...this.outputs]) n += t.buffer.size;
    return n;
  }

  /** Record the captured commands for new inputs (same shapes and dtypes); returns new output tensors. */
  replay(inputs: readonly Tensor[]): Tensor[] {
    if (this.disposed) throw new Error('graph replay: the graph was disposed');
    if (this.staleWhy)
      throw new Error(`graph replay: the graph is stale (${this.staleWhy}); capture it again`);
    const rt = runtime();
    if (rt.capture) throw new Error('graph replay: not inside a capture');
    if (inputs.length !== this.inputs.length || inputs.some((t, i) => !sameLayout(t, this.inputs[i]!)))
      throw new Error(
        `graph replay: inputs ${inputs.map((t) => t.describe()).join(', ')} differ from the captured ${this.inputs
          .map((t) => t.describe())
          .join(', ')} (capture a graph per shape)`,
      );
    inputs.forEach((t, i) => {
      rt.copy(t.buffer, 0, this.inputs[i]!.buffer, 0, align4(t.byteLength));
    });
    // as an eager run's dispatches would: kept copies of the state's data and graphs reading it are dropped
    for (const b of this.stateWrites) rt.invalidate(b);
    // a graph that reads such a copy would read it after its update: refuse rather than replay it
    if (this.staleWhy)
      throw new Error(
        `graph replay: the graph reads a copy of data it writes (${this.staleWhy}); capture it again with that copy made inside`,
      );
    rt.replay(this.ops);
    return this.copyOutputs();
  }

  private copyOutputs(): Tensor[] {
    const rt = runtime();
    return this.outputs.map((o) => {
      const t = empty(o.shape, o.dtype);
      rt.copy(o.buffer, 0, t.buffer, 0, align4(o.byteLength));
      return t;
    });
  }

  private markStale(why: string): void {
    if (this.staleWhy) return;
    this.staleWhy = why;
    for (const u of this.unwatch) u();
    this.unwatch.length = 0;
  }

  /** Give every buffer back (the intermediates to the pool). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const u of this.unwatch) u();
    this.unwatch.length = 0;
    const rt = runtime();
    // recorded, unsubmitted commands may use the uniform and upload buffers: submit them before destroying
    if (rt.recording) rt.flush();
    for (const b of this.claimed) rt.pool.release(b, false);
    for (const t of [...this.inputs, ...this.outputs]) t.dispose();
    for (const b of this.own) b.destroy();
  }
}

/**
 * Sort the buffers a capture's commands use: the graph's own (its inputs and outputs, and the
 * intermediates, claimed from the pool here), the state it writes in place, and the ones it only reads
 * (watched). Returns why the capture cannot be replayed instead, claiming nothing and keeping no output.
 */
function ownership(
  log: CaptureLog,
  ins: Tensor[],
  outs: Tensor[],
  made: Tensor[],
  state: ReadonlySet<GPUBuffer>,
): { claimed: GPUBuffer[]; external: GPUBuffer[]; stateWrites: GPUBuffer[] } | string {
  const rt = runtime();
  const held = new Set<GPUBuffer>([...ins, ...outs].map((t) => t.buffer));
  const referenced = new Set<GPUBuffer>();
  const written = new Set<GPUBuffer>();
  for (const op of log.ops) {
    if (op.kind === 'dispatch') {
      for (const b of op.reads) referenced.add(b);
      for (const b of op.writes) {
        referenced.add(b);
        written.add(b);
      }
    } else if (op.kind === 'copy') {
      referenced.add(op.src).add(op.dst);
      written.add(op.dst);
    } else {
      referenced.add(op.dst);
      written.add(op.dst);
    }
  }
  if (log.readBack)
    return 'the function read a value back (a graph cannot depend on values; read after it returns)';
  for (const t of outs)
    if (!made.includes(t)) return `the function returned ${t.describe()}, which it did not make`;
  const claimed: GPUBuffer[] = [];
  const external: GPUBuffer[] = [];
  const stateWrites: GPUBuffer[] = [];
  let problem: string | null = null;
  for (const b of referenced) {
    if (held.has(b)) continue;
    if (log.gone.has(b))
      problem =
        'the buffer pool destroyed a buffer the capture uses (its memory cap, POOL_MAX_RESERVED_BYTES, is too small for one run; raise it or set GRAPH_CAPTURE=0)';
    else if (log.born.has(b)) {
      if (rt.pool.claim(b)) claimed.push(b);
      else
        problem = 'a buffer made during the capture is still held outside it (by a tensor it did not return)';
    } else if (state.has(b)) {
      if (written.has(b)) stateWrites.push(b);
    } else if (written.has(b))
      problem = 'the function writes a buffer it did not make (only its own and its state may change)';
    else external.push(b);
    if (problem) break;
  }
  if (problem) {
    for (const b of claimed) rt.pool.release(b, rt.recording);
    return problem;
  }
  // the outputs become the graph's (not the caller's scope's)
  for (const t of made) keep(t);
  for (const t of outs) rt.invalidate(t.buffer);
  return { claimed, external, stateWrites };
}

/** A capture's log as replayable commands, with the uniform and upload buffers they read. */
function compile(log: CaptureLog): { ops: ReplayOp[]; own: GPUBuffer[] } {
  const rt = runtime();
  // uniforms: a slot per dispatch that has them, written once
  const withUniforms = log.ops.filter((op) => op.kind === 'dispatch' && op.uniforms).length;
  const uniformBuffer = rt.device.createBuffer({
    size: Math.max(1, withUniforms) * UNIFORM_SLOT,
    usage: 0x40 /* UNIFORM */ | 0x8 /* COPY_DST */,
    label: 'graph uniforms',
  });
  const uniformData = new Uint8Array(Math.max(1, withUniforms) * UNIFORM_SLOT);
  // uploads: one buffer holding every write's data, copied into place in command order
  let uploadBytes = 0;
  for (const op of log.ops) if (op.kind === 'write') uploadBytes += align4(op.data.byteLength);
  const uploadBuffer = rt.device.createBuffer({
    size: Math.max(4, uploadBytes),
    usage: 0x4 /* COPY_SRC */ | 0x8 /* COPY_DST */,
    label: 'graph uploads',
  });
  const uploadData = new Uint8Array(Math.max(4, uploadBytes));

  const ids = new Map<GPUBuffer, number>();
  const id = (b: GPUBuffer) => {
    let i = ids.get(b);
    if (i === undefined) ids.set(b, (i = ids.size));
    return i;
  };
  const groups = new Map<string, GPUBindGroup>();
  const ops: ReplayOp[] = [];
  let slot = 0;
  let uploaded = 0;
  for (const op of log.ops) {
    if (op.kind === 'copy') {
      ops.push({ copy: [op.src, op.srcOffset, op.dst, op.dstOffset, op.bytes] });
    } else if (op.kind === 'write') {
      uploadData.set(op.data, uploaded);
      ops.push({ copy: [uploadBuffer, uploaded, op.dst, op.offset, op.data.byteLength] });
      uploaded += align4(op.data.byteLength);
    } else {
      const buffers = [...op.reads, ...op.writes];
      const size = op.uniforms?.byteLength ?? 0;
      const key = `${op.layoutKey}|${size}|${buffers.map(id).join(',')}`;
      let group = groups.get(key);
      if (!group) {
        const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({
          binding,
          resource: { buffer },
        }));
        if (size > 0)
          entries.push({ binding: entries.length, resource: { buffer: uniformBuffer, offset: 0, size } });
        group = rt.device.createBindGroup({ layout: op.layout, entries, label: 'graph' });
        groups.set(key, group);
      }
      let offsets: number[] | null = null;
      if (op.uniforms) {
        uniformData.set(op.uniforms, slot * UNIFORM_SLOT);
        offsets = [slot * UNIFORM_SLOT];
        slot++;
      }
      ops.push({
        name: op.name,
        cost: op.cost,
        pipeline: op.pipeline,
        group,
        offsets,
        workgroups: op.workgroups,
      });
    }
  }
  rt.device.queue.writeBuffer(uniformBuffer, 0, uniformData);
  rt.device.queue.writeBuffer(uploadBuffer, 0, uploadData);
  return { ops, own: [uniformBuffer, uploadBuffer] };
}

/** How a GraphCache captures (see GraphCache). */
export interface GraphCacheOptions {
  /** whether to capture at all (default: the flag GRAPH_CAPTURE) */
  enabled?: () => boolean;
  /** the state the function writes in place (CaptureOptions.state), asked at each capture */
  state?: () => ReadonlySet<GPUBuffer>;
  /** told once per key why its capture was refused (default: a warning on the console) */
  onRefused?: (why: string) => void;
}

/**
 * A function run through graphs: eagerly the first time a shape (and flag set) is seen, captured the
 * second, replayed after that; a stale graph is dropped and the cycle starts again. One graph at a time:
 * a new shape gives the previous graph's memory back first (the last, smaller batch of a test set runs
 * eagerly in it). Off with the flag GRAPH_CAPTURE (or `enabled`): every call is eager. A function whose
 * capture is refused (it does what a graph cannot replay) runs eagerly for that key from then on: the
 * refused capture was a normal run, so nothing is lost but speed, and the reason is told once.
 */
export class GraphCache {
  private graph: CapturedGraph | null = null;
  private key: string | null = null;
  /** calls of the current key so far */
  private calls = 0;
  /** why the current key's capture was refused, if it was */
  private refusedWhy: string | null = null;
  /** calls so far that ran eagerly (a refused capture too), were captured, and were replayed (all keys) */
  readonly counts = { eager: 0, captured: 0, replayed: 0 };

  constructor(
    private readonly fn: (inputs: Tensor[]) => Tensor[],
    private readonly options: GraphCacheOptions = {},
  ) {}

  run(inputs: Tensor[]): Tensor[] {
    const enabled = this.options.enabled ? this.options.enabled() : flag('GRAPH_CAPTURE');
    if (!enabled) return this.eager(inputs);
    const key = `${inputs.map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(';')}|${JSON.stringify(allFlags())}`;
    if (key !== this.key || this.graph?.stale) {
      this.drop();
      if (key !== this.key) this.refusedWhy = null;
      this.key = key;
    }
    this.calls++;
    if (this.graph) {
      this.counts.replayed++;
      return this.graph.replay(inputs);
    }
    if (this.calls === 1 || this.refusedWhy !== null) return this.eager(inputs);
    const r = CapturedGraph.tryCapture(inputs, this.fn, { state: this.options.state?.() ?? new Set() });
    if (r.graph) {
      this.graph = r.graph;
      this.counts.captured++;
    } else {
      this.counts.eager++;
      this.refusedWhy = r.refused;
      const tell =
        this.options.onRefused ??
        ((why: string) => console.warn(`graph capture refused, running eagerly: ${why}`));
      tell(r.refused);
    }
    return r.outputs;
  }

  /** The graph now held (for tests and benchmarks), if any. */
  get current(): CapturedGraph | null {
    return this.graph;
  }

  /** Why the current key's capture was refused (it runs eagerly), or null. */
  get refused(): string | null {
    return this.refusedWhy;
  }

  private eager(inputs: Tensor[]): Tensor[] {
    this.counts.eager++;
    return scope(() => this.fn(inputs));
  }

  private drop(): void {
    this.graph?.dispose();
    this.graph = null;
    this.calls = 0;
  }

  dispose(): void {
    this.drop();
    this.key = null;
    this.refusedWhy = null;
  }
}
