/**
 * The one contract every GPU program follows, and the runtime that records and submits them.
 *
 * A program (after onnxruntime's ProgramInfo and tfjs's WebGPUProgram) is described by a `Program`:
 *   - `name` and `key`: the pipeline cache key is `name|key|bindings`; `key` must name exactly what the
 *     WGSL text depends on (tile sizes, flags, ...) and nothing that changes per call (shapes go in
 *     uniforms, so one pipeline serves every shape);
 *   - `inputs` (read-only storage), `outputs` (read-write storage), `uniforms` (scalars, one struct `u`);
 *   - `wgsl(header)`: the kernel body; the runtime generates the header (bindings and the uniform struct)
 *     so no kernel writes binding declarations by hand;
 *   - `workgroups`: the dispatch size.
 *
 * Recording: dispatches go into one open compute pass of one command encoder, which is submitted every
 * DISPATCHES_PER_SUBMIT dispatches (so the GPU starts on the first part of a step while the CPU records
 * the rest), and whenever someone needs a result on the CPU (`read`) or calls `flush()`.
 *
 * CPU per dispatch is kept small because a training step is ~1,800 dispatches:
 *   - uniform values are packed into one arena buffer (256-byte slots, written once per submit) bound
 *     with a *dynamic offset*, so a bind group does not depend on where a dispatch's uniforms are;
 *   - bind groups are cached by (layout, buffers): a warm step gets the same buffers from the pool in the
 *     same order, so it creates no bind group at all (entries naming a buffer the pool destroys are
 *     dropped);
 *   - the pipeline cache key is built without intermediate arrays.
 * The arena can be rewritten for the next submit while the previous one still runs: queue.writeBuffer is
 * ordered after earlier submits on the queue timeline.
 *
 * Graphs (graph.ts): while a capture is open, every dispatch, copy and write is also logged, and `replay`
 * records a captured sequence again with nothing but Dawn's three calls per dispatch.
 */
import { DerivedCache } from './derived.js';
import type { GpuContext } from './device.js';
import { flag } from './flags.js';
import type { CaptureLog, ReplayOp } from './graph.js';
import { BufferPool } from './memory.js';
import type { DispatchCost, DispatchProfiler } from './profiler.js';

export type ScalarType = 'f32' | 'u32' | 'i32';

export interface BufferBinding {
  name: string;
  buffer: GPUBuffer;
  /**
   * WGSL element type of the array (default f32). `vec4<f32>` etc. are allowed; a buffer holding an f16
   * tensor must be bound with a type naming f16 (`f16`, `vec4<f16>`) and no other buffer may be.
   */
  type?: string;
}

/** The buffers that hold f16 tensors now (tensor.ts tags every buffer it hands out; pooled ones change). */
const halfBuffers = new WeakSet<GPUBuffer>();

/** Record which storage type the tensor now owning `buf` has (called by every Tensor constructor). */
export function tagBufferDtype(buf: GPUBuffer, dtype: 'f32' | 'f16'): void {
  if (dtype === 'f16') halfBuffers.add(buf);
  else halfBuffers.delete(buf);
}

/**
 * Throws when a binding reads an f16 tensor as something else or an f32 one as f16: the values would be
 * garbage, so this is checked on every dispatch (a WeakSet lookup per binding).
 */
function checkBindingTypes(p: Program): void {
  for (const b of p.inputs) checkBinding(p, b);
  for (const b of p.outputs) checkBinding(p, b);
}

function checkBinding(p: Program, b: BufferBinding): void {
  const type = b.type ?? 'f32';
  const half = halfBuffers.has(b.buffer);
  if (half !== type.includes('f16'))
    throw new Error(
      half
        ? `program '${p.name}': '${b.name}' is an f16 tensor, but this op reads ${type} — only the activation ops (convolutions, transposed convolutions, batch and instance norms, addRelu, concat, max pool), the cosines and cosine losses, and cast take f16 tensors (convert it with cast(t, 'f32'))`
        : `program '${p.name}': '${b.name}' is bound as ${type} but holds an f32 tensor`,
    );
}

export interface Program {
  name: string;
  key?: string;
  inputs: BufferBinding[];
  outputs: BufferBinding[];
  uniforms?: Record<string, [ScalarType, number]>;
  workgroups: [number, number?, number?];
  wgsl: (header: string) => string;
  /** FLOPs and bytes moved by this dispatch, where the op knows them (profiling: achieved FLOP/s). */
  cost?: DispatchCost;
}

/** Bytes per dispatch in the uniform arena (minUniformBufferOffsetAlignment is at most 256). */
export const UNIFORM_SLOT = 256;

/** `n` rounded up to a multiple of 4 (the size and offset rule of buffer copies and writes). */
export const align4 = (n: number) => Math.ceil(n / 4) * 4;

/** Uniform slots in the arena: a submit happens at the latest when they are used up. */
const ARENA_SLOTS = 1024;

/** Bind groups cached at most (a warm RD++ training step uses ~2,000; beyond this the cache restarts). */
const MAX_CACHED_BIND_GROUPS = 20_000;

export class Runtime {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  private pipelines = new Map<string, GPUComputePipeline>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** dispatches recorded since the last submit */
  private dispatches = 0;
  /** the uniform arena: one buffer, rewritten before every submit; `data` is its CPU copy */
  private readonly arena: { buffer: GPUBuffer; data: ArrayBuffer; view: DataView; used: number };
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  /** bind-group cache keys naming each buffer (by buffer id), to drop them when the buffer is destroyed */
  private readonly groupsByBuffer = new Map<number, string[]>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  /** Timestamp profiling of every dispatch, when started (see profiler.ts). */
  profiler: DispatchProfiler | null = null;
  /** Copies of buffers' data in other layouts, dropped when the data is written (see derived.ts). */
  readonly derived = new DerivedCache();
  /** Counters for benchmarks, tests and `rdpp profile`. */
  readonly counters = { dispatches: 0, submits: 0, pipelines: 0, bindGroups: 0 };
  /** The capture in progress (graph.ts): every dispatch, copy and write recorded is logged there too. */
  capture: CaptureLog | null = null;
  /** Who is told when a buffer's data changes or goes (graphs that read it without owning it). */
  private readonly watchers = new Map<GPUBuffer, Set<() => void>>();

  constructor(readonly gpu: GpuContext) {
    this.device = gpu.device;
    this.pool = new BufferPool(
      this.device,
      () => flag('POOL_MAX_RESERVED_BYTES'),
      gpu.report.limits.maxStorageBufferBindingSize,
    );
    this.pool.onDestroy = (buf) => this.forgetBuffer(buf);
    this.derived.makeWith = (source, make) => this.outsideCapture(source, make);
    const bytes = UNIFORM_SLOT * ARENA_SLOTS;
    const data = new ArrayBuffer(bytes);
    this.arena = {
      buffer: this.device.createBuffer({ size: bytes, usage: 0x40 /* UNIFORM */ | 0x8 /* COPY_DST */ }),
      data,
      view: new DataView(data),
      used: 0,
    };
  }

  /** True while commands are recorded but not submitted (buffers released now must wait). */
  get recording(): boolean {
    return this.encoder !== null;
  }

  private pipeline(p: Program): GPUComputePipeline {
    // name|key|bindings|uniforms: everything the generated WGSL text depends on
    let cacheKey = `${p.name}|${p.key ?? ''}|`;
    for (const b of p.inputs) cacheKey += `${b.name}:${b.type ?? 'f32'},`;
    cacheKey += '|';
    for (const b of p.outputs) cacheKey += `${b.name}:${b.type ?? 'f32'},`;
    cacheKey += '|';
    if (p.uniforms) for (const k in p.uniforms) cacheKey += `${k}:${p.uniforms[k]![0]},`;
    let pipe = this.pipelines.get(cacheKey);
    if (pipe) return pipe;
    const text = p.wgsl(header(p));
    // f16 bindings need the extension; kernels with f16 arithmetic enable it themselves
    const code = hasHalfBinding(p) && !/^enable f16;/m.test(text) ? `enable f16;\n${text}` : text;
    if (flag('PRINT_SHADERS')) console.log(`// ---- ${cacheKey}\n${code}`);
    const module = this.device.createShaderModule({ code, label: p.name });
    if (flag('VALIDATE_SHADERS')) {
      module.getCompilationInfo().then((info) => {
        const errs = info.messages.filter((m) => m.type === 'error');
        if (errs.length) {
          const lines = code.split('\n');
          const msg = errs
            .map(
              (m) => `${p.name}:${m.lineNum}:${m.linePos}: ${m.message}\n  > ${lines[m.lineNum - 1] ?? ''}`,
            )
            .join('\n');
          console.error(`WGSL compile error in program '${p.name}' (key ${cacheKey}):\n${msg}`);
        }
      });
    }
    const layout = this.device.createPipelineLayout({ bindGroupLayouts: [this.layout(p)] });
    pipe = this.device.createComputePipeline({
      layout,
      compute: { module, entryPoint: 'main' },
      label: p.name,
    });
    this.pipelines.set(cacheKey, pipe);
    this.counters.pipelines++;
    return pipe;
  }

  /**
   * Explicit bind group layouts (not 'auto'), so that a binding a kernel variant does not read is still
   * valid. Keyed by (number of read-only, read-write, uniform) bindings.
   */
  private layoutKey(p: Program): string {
    let hasUniform = false;
    if (p.uniforms) for (const _ in p.uniforms) hasUniform = true;
    return `${p.inputs.length}/${p.outputs.length}/${hasUniform}`;
  }

  private layout(p: Program): GPUBindGroupLayout {
    const key = this.layoutKey(p);
    const hasUniform = key.endsWith('true');
    let l = this.layouts.get(key);
    if (l) return l;
    const entries: GPUBindGroupLayoutEntry[] = [];
    const COMPUTE = 0x4;
    for (let i = 0; i < p.inputs.length; i++)
      entries.push({ binding: entries.length, visibility: COMPUTE, buffer: { type: 'read-only-storage' } });
    for (let i = 0; i < p.outputs.length; i++)
      entries.push({ binding: entries.length, visibility: COMPUTE, buffer: { type: 'storage' } });
    if (hasUniform)
      entries.push({
        binding: entries.length,
        visibility: COMPUTE,
        buffer: { type: 'uniform', hasDynamicOffset: true },
      });
    l = this.device.createBindGroupLayout({ entries });
    this.layouts.set(key, l);
    return l;
  }

  /** Write a program's uniforms into the next arena slot; returns the slot's offset and the struct size. */
  private uniformSlot(p: Program): { offset: number; size: number } | null {
    const u = p.uniforms;
    if (!u) return null;
    const offset = this.arena.used;
    const view = this.arena.view;
    let i = 0;
    for (const k in u) {
      const [t, v] = u[k]!;
      const at = offset + i * 4;
      if (t === 'f32') view.setFloat32(at, v, true);
      else if (t === 'u32') view.setUint32(at, v >>> 0, true);
      else view.setInt32(at, v | 0, true);
      i++;
    }
    if (i === 0) return null;
    this.arena.used += UNIFORM_SLOT;
    return { offset, size: Math.ceil((i * 4) / 16) * 16 };
  }

  private bufferId(buf: GPUBuffer): number {
    let id = this.bufferIds.get(buf);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(buf, id);
    }
    return id;
  }

  /** The bind group of a dispatch: cached by layout, buffers and uniform size. */
  private bindGroup(
    p: Program,
    layout: GPUBindGroupLayout,
    layoutKey: string,
    uniformSize: number,
  ): GPUBindGroup {
    const ids: number[] = [];
    let key = `${layoutKey}|${uniformSize}|`;
    for (const b of p.inputs) {
      const id = this.bufferId(b.buffer);
      ids.push(id);
      key += `${id},`;
    }
    for (const b of p.outputs) {
      const id = this.bufferId(b.buffer);
      ids.push(id);
      key += `${id},`;
    }
    let group = this.bindGroups.get(key);
    if (group) return group;
    const entries: GPUBindGroupEntry[] = [];
    let i = 0;
    for (const b of p.inputs) entries.push({ binding: i++, resource: { buffer: b.buffer } });
    for (const b of p.outputs) entries.push({ binding: i++, resource: { buffer: b.buffer } });
    if (uniformSize > 0)
      entries.push({ binding: i++, resource: { buffer: this.arena.buffer, offset: 0, size: uniformSize } });
    group = this.device.createBindGroup({ layout, entries });
    this.counters.bindGroups++;
    if (this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) {
      this.bindGroups.clear();
      this.groupsByBuffer.clear();
    }
    this.bindGroups.set(key, group);
    for (const id of ids) {
      const list = this.groupsByBuffer.get(id);
      if (list) list.push(key);
      else this.groupsByBuffer.set(id, [key]);
    }
    return group;
  }

  /** Drop every cached bind group that names a buffer about to be destroyed. */
  private forgetBuffer(buf: GPUBuffer): void {
    this.capture?.destroyed(buf);
    const id = this.bufferIds.get(buf);
    if (id === undefined) return;
    for (const key of this.groupsByBuffer.get(id) ?? []) this.bindGroups.delete(key);
    this.groupsByBuffer.delete(id);
  }

  /**
   * Run `make` (a kept copy of `source`'s data, derived.ts) unlogged by an open capture: the copy lasts
   * beyond the graph, so the graph reads it like the weight it is made from — and goes stale with it —
   * instead of remaking it at every replay. A copy of a buffer born in the capture is logged as usual.
   */
  private outsideCapture<T>(source: GPUBuffer, make: () => T): T {
    const log = this.capture;
    if (!log || log.born.has(source)) return make();
    const onAcquire = this.pool.onAcquire;
    this.capture = null;
    this.pool.onAcquire = null;
    try {
      return make();
    } finally {
      this.capture = log;
      this.pool.onAcquire = onAcquire;
    }
  }

  /** Record one dispatch of a program. */
  run(p: Program): void {
    const [x, y = 1, z = 1] = p.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.gpu.report.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new Error(`program '${p.name}': workgroup count [${x}, ${y}, ${z}] exceeds the limit ${maxWg}`);
    }
    checkBindingTypes(p);
    const pipe = this.pipeline(p);
    for (const b of p.outputs) this.invalidate(b.buffer);
    const layoutKey = this.layoutKey(p);
    const layout = this.layout(p);
    if (this.arena.used + UNIFORM_SLOT > this.arena.data.byteLength) this.flush();
    const slot = this.uniformSlot(p);
    const group = this.bindGroup(p, layout, layoutKey, slot?.size ?? 0);
    if (this.capture) {
      const uniforms = slot
        ? new Uint8Array(this.arena.data.slice(slot.offset, slot.offset + slot.size))
        : null;
      this.capture.dispatch(p, pipe, layout, layoutKey, uniforms, [x, y, z]);
    }
    const pass = this.passFor(p.name, p.cost);
    pass.setPipeline(pipe);
    if (slot) pass.setBindGroup(0, group, [slot.offset]);
    else pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y, z);
    if (flag('LOG_DISPATCHES')) console.log(`dispatch ${p.name} [${x}, ${y}, ${z}]`);
    this.dispatched();
  }

  /** The compute pass the next dispatch goes into (profiling: a new one per dispatch, timestamped). */
  private passFor(name: string, cost: DispatchCost | undefined): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.profiler) {
      // one pass per dispatch, with a timestamp at its start and end
      if (this.pass) this.pass.end();
      this.pass = this.encoder.beginComputePass({ timestampWrites: this.profiler.next(name, cost) });
    } else if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  /** After a dispatch: end a profiled pass, count it, and submit every DISPATCHES_PER_SUBMIT dispatches. */
  private dispatched(): void {
    if (this.profiler) {
      this.pass!.end();
      this.pass = null;
    }
    this.dispatches++;
    this.counters.dispatches++;
    if (this.dispatches >= flag('DISPATCHES_PER_SUBMIT') || this.profiler?.full()) this.flush();
  }

  /** Record a buffer-to-buffer copy (ends the open compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.invalidate(dst);
    this.capture?.copy(src, srcOffset, dst, dstOffset, bytes);
    this.encodeCopy(src, srcOffset, dst, dstOffset, bytes);
  }

  private encodeCopy(
    src: GPUBuffer,
    srcOffset: number,
    dst: GPUBuffer,
    dstOffset: number,
    bytes: number,
  ): void {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Record a captured graph's commands again (graph.ts): no op code, no cache lookups, no uniform writes —
   * per dispatch only Dawn's setPipeline, setBindGroup and dispatchWorkgroups. The graph owns every buffer
   * its commands write, so no kept copy can depend on them (nothing to invalidate).
   */
  replay(ops: readonly ReplayOp[]): void {
    // setPipeline only when the pipeline changes within a pass
    let lastPass: GPUComputePassEncoder | null = null;
    let lastPipeline: GPUComputePipeline | null = null;
    for (const op of ops) {
      if (op.copy) {
        this.encodeCopy(...op.copy);
        continue;
      }
      const pass = this.passFor(op.name, op.cost);
      if (pass !== lastPass || op.pipeline !== lastPipeline) pass.setPipeline(op.pipeline);
      lastPass = pass;
      lastPipeline = op.pipeline;
      if (op.offsets) pass.setBindGroup(0, op.group, op.offsets);
      else pass.setBindGroup(0, op.group);
      pass.dispatchWorkgroups(op.workgroups[0], op.workgroups[1], op.workgroups[2]);
      this.dispatched();
    }
  }

  /**
   * `buf`'s data is about to change or go: copies derived from it are dropped (derived.ts), and whoever
   * watches it (a graph that reads it without owning it) is told. Every write and every free comes here.
   */
  invalidate(buf: GPUBuffer): void {
    this.derived.invalidate(buf);
    if (this.watchers.size === 0) return;
    const list = this.watchers.get(buf);
    if (!list) return;
    this.watchers.delete(buf);
    for (const changed of list) changed();
  }

  /** Call `changed` the first time `buf` is written or freed; returns a function that stops watching. */
  watch(buf: GPUBuffer, changed: () => void): () => void {
    let list = this.watchers.get(buf);
    if (!list) this.watchers.set(buf, (list = new Set()));
    list.add(changed);
    return () => {
      const l = this.watchers.get(buf);
      if (!l) return;
      l.delete(changed);
      if (l.size === 0) this.watchers.delete(buf);
    };
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) this.pass.end();
    if (this.arena.used > 0)
      this.device.queue.writeBuffer(this.arena.buffer, 0, this.arena.data, 0, this.arena.used);
    this.profiler?.resolve(this.encoder);
    const commands = this.encoder.finish();
    this.device.queue.submit([commands]);
    this.profiler?.submitted();
    this.counters.submits++;
    this.encoder = null;
    this.pass = null;
    this.dispatches = 0;
    this.arena.used = 0;
    this.pool.onSubmit();
  }

  /** Copy `bytes` bytes of a buffer back to the CPU (submits pending work first). */
  async read(buf: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    if (this.capture) {
      this.capture.readBack = true;
      throw new Error(READ_IN_CAPTURE);
    }
    const size = align4(bytes);
    const staging = this.device.createBuffer({ size, usage: 0x1 /* MAP_READ */ | 0x8 /* COPY_DST */ });
    this.copy(buf, offset, staging, 0, size);
    this.flush();
    try {
      await this.gpu.guard(staging.mapAsync(0x1 /* GPUMapMode.READ */));
      this.gpu.check();
      return staging.getMappedRange().slice(0, bytes);
    } finally {
      staging.destroy();
    }
  }

  /** Wait until the GPU has finished everything submitted (for timing). */
  async sync(): Promise<void> {
    this.flush();
    await this.gpu.guard(this.device.queue.onSubmittedWorkDone());
    this.gpu.check();
  }

  write(buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.invalidate(buf);
    this.capture?.write(buf, offset, data);
    this.device.queue.writeBuffer(buf, offset, data.buffer, data.byteOffset, data.byteLength);
  }
}

const READ_IN_CAPTURE =
  'a tensor was read back during a graph capture: a captured function must not depend on values it reads (read after it returns)';

function hasHalfBinding(p: Program): boolean {
  return [...p.inputs, ...p.outputs].some((b) => b.type?.includes('f16'));
}

/** Generate the binding declarations and the uniform struct of a program. */
function header(p: Program): string {
  const lines: string[] = [];
  let i = 0;
  for (const b of p.inputs)
    lines.push(`@group(0) @binding(${i++}) var<storage, read> ${b.name}: array<${b.type ?? 'f32'}>;`);
  for (const b of p.outputs)
    lines.push(`@group(0) @binding(${i++}) var<storage, read_write> ${b.name}: array<${b.type ?? 'f32'}>;`);
  const uni = Object.entries(p.uniforms ?? {});
  if (uni.length) {
    lines.push(`struct Uniforms { ${uni.map(([k, [t]]) => `${k}: ${t},`).join(' ')} };`);
    lines.push(`@group(0) @binding(${i++}) var<uniform> u: Uniforms;`);
  }
  return lines.join('\n');
}
