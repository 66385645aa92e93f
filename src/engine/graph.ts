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
 * What a captured function must be: a function of its inputs and of buffers that stay as they are, issuing
 * the same commands every time. It may not read values back or write a buffer it did not make (both
 * refused). A weight copy kept on first use (derived.ts) is made outside the capture and read like the
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
  ): { graph: CapturedGraph; outputs: Tensor[] } {
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
    const graph = CapturedGraph.build(log, ins, outs);
    return { graph, outputs: graph.copyOutputs() };
  }

  /** The graph of a finished capture: its buffers sorted (ownership), its log compiled. */
  private static build(log: CaptureLog, ins: Tensor[], outs: Tensor[]): CapturedGraph {
    const { claimed, external } = ownership(log, ins, outs);
    const { ops, own } = compile(log);
    return new CapturedGraph(ins, outs, ops, claimed, own, external);
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
 * intermediates, claimed from the pool here), and the ones it only reads (watched). Throws, giving back
 * what it claimed and the graph's tensors, if the capture did what a graph cannot replay.
 */
function ownership(
  log: CaptureLog,
  ins: Tensor[],
  outs: Tensor[],
): { claimed: GPUBuffer[]; external: GPUBuffer[] } {
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
  // the outputs become the graph's (not the caller's scope's); one it did not make stays the caller's
  const made = outs.filter((t) => log.born.has(t.buffer) || ins.some((i) => i.buffer === t.buffer));
  for (const t of made) keep(t);
  const claimed: GPUBuffer[] = [];
  const external: GPUBuffer[] = [];
  let problem: string | null = log.readBack
    ? 'the function read a value back (a graph cannot depend on values; read after it returns)'
    : null;
  for (const t of outs)
    if (!made.includes(t)) problem = `the function returned ${t.describe()}, which it did not make`;
  for (const b of referenced) {
    if (problem) break;
    if (held.has(b)) continue;
    if (log.gone.has(b))
      problem =
        'the buffer pool destroyed a buffer the capture uses (its memory cap, POOL_MAX_RESERVED_BYTES, is too small for one run; raise it or set GRAPH_CAPTURE=0)';
    else if (log.born.has(b)) {
      if (rt.pool.claim(b)) claimed.push(b);
      else
        problem = 'a buffer made during the capture is still held outside it (by a tensor it did not return)';
    } else if (written.has(b))
      problem = 'the function writes a buffer it did not make (only its own may change)';
    else external.push(b);
  }
  if (problem) {
    for (const b of claimed) rt.pool.release(b, rt.recording);
    for (const t of [...ins, ...made]) t.dispose();
    throw new Error(`graph capture: ${problem}`);
  }
  for (const t of outs) rt.invalidate(t.buffer);
  return { claimed, external };
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

/**
 * A function run through graphs: eagerly the first time a shape (and flag set) is seen, captured the
 * second, replayed after that; a stale graph is dropped and the cycle starts again. One graph at a time:
 * a new shape gives the previous graph's memory back first (the last, smaller batch of a test set runs
 * eagerly in it). Off with the flag GRAPH_CAPTURE: every call is eager.
 */
export class GraphCache {
  private graph: CapturedGraph | null = null;
  private key: string | null = null;
  /** calls of the current key so far */
  private calls = 0;

  constructor(private readonly fn: (inputs: Tensor[]) => Tensor[]) {}

  run(inputs: Tensor[]): Tensor[] {
    if (!flag('GRAPH_CAPTURE')) return this.eager(inputs);
    const key = `${inputs.map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(';')}|${JSON.stringify(allFlags())}`;
    if (key !== this.key || this.graph?.stale) {
      this.drop();
      this.key = key;
    }
    this.calls++;
    if (this.graph) return this.graph.replay(inputs);
    if (this.calls === 1) return this.eager(inputs);
    const { graph, outputs } = CapturedGraph.capture(inputs, this.fn);
    this.graph = graph;
    return outputs;
  }

  /** The graph now held (for tests and benchmarks), if any. */
  get current(): CapturedGraph | null {
    return this.graph;
  }

  private eager(inputs: Tensor[]): Tensor[] {
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
  }
}
