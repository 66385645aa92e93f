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
 * Recording: every dispatch goes into one open compute pass of one command encoder; nothing is submitted
 * until someone needs a result on the CPU (`read`), calls `flush()`, or MAX_DISPATCHES_PER_SUBMIT is
 * reached. Uniform values are packed into 64 KiB arena buffers with 256-byte slots and written just
 * before the submit.
 */
import type { GpuContext } from './device.js';
import { flag } from './flags.js';
import { BufferPool } from './memory.js';

export type ScalarType = 'f32' | 'u32' | 'i32';

export interface BufferBinding {
  name: string;
  buffer: GPUBuffer;
  /** WGSL element type of the array (default f32). `vec4<f32>` etc. are allowed. */
  type?: string;
}

export interface Program {
  name: string;
  key?: string;
  inputs: BufferBinding[];
  outputs: BufferBinding[];
  uniforms?: Record<string, [ScalarType, number]>;
  workgroups: [number, number?, number?];
  wgsl: (header: string) => string;
}

const UNIFORM_SLOT = 256;
const ARENA_BYTES = 64 * 1024;

interface Arena {
  buffer: GPUBuffer;
  data: ArrayBuffer;
  used: number;
}

export class Runtime {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  private pipelines = new Map<string, GPUComputePipeline>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private arenas: Arena[] = [];
  private freeArenas: Arena[] = [];
  /** Counters for benchmarks and tests. */
  readonly counters = { dispatches: 0, submits: 0, pipelines: 0 };

  constructor(readonly gpu: GpuContext) {
    this.device = gpu.device;
    this.pool = new BufferPool(
      this.device,
      () => flag('POOL_MAX_IDLE_BYTES'),
      gpu.report.limits.maxStorageBufferBindingSize,
    );
  }

  /** True while commands are recorded but not submitted (buffers released now must wait). */
  get recording(): boolean {
    return this.encoder !== null;
  }

  private pipeline(p: Program): GPUComputePipeline {
    const sig = [...p.inputs, ...p.outputs].map((b) => `${b.name}:${b.type ?? 'f32'}`).join(',');
    const uni = Object.entries(p.uniforms ?? {})
      .map(([k, [t]]) => `${k}:${t}`)
      .join(',');
    const cacheKey = `${p.name}|${p.key ?? ''}|${sig}|${uni}`;
    let pipe = this.pipelines.get(cacheKey);
    if (pipe) return pipe;
    const code = p.wgsl(header(p));
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
  private layout(p: Program): GPUBindGroupLayout {
    const hasUniform = Object.keys(p.uniforms ?? {}).length > 0;
    const key = `${p.inputs.length}/${p.outputs.length}/${hasUniform}`;
    let l = this.layouts.get(key);
    if (l) return l;
    const entries: GPUBindGroupLayoutEntry[] = [];
    const COMPUTE = 0x4;
    for (let i = 0; i < p.inputs.length; i++)
      entries.push({ binding: entries.length, visibility: COMPUTE, buffer: { type: 'read-only-storage' } });
    for (let i = 0; i < p.outputs.length; i++)
      entries.push({ binding: entries.length, visibility: COMPUTE, buffer: { type: 'storage' } });
    if (hasUniform)
      entries.push({ binding: entries.length, visibility: COMPUTE, buffer: { type: 'uniform' } });
    l = this.device.createBindGroupLayout({ entries });
    this.layouts.set(key, l);
    return l;
  }

  private uniformSlot(p: Program): { buffer: GPUBuffer; offset: number; size: number } | null {
    const entries = Object.values(p.uniforms ?? {});
    if (entries.length === 0) return null;
    const size = Math.ceil((entries.length * 4) / 16) * 16;
    let arena = this.arenas[this.arenas.length - 1];
    if (!arena || arena.used + UNIFORM_SLOT > ARENA_BYTES) {
      arena = this.freeArenas.pop() ?? {
        buffer: this.device.createBuffer({
          size: ARENA_BYTES,
          usage: 0x40 /* UNIFORM */ | 0x8 /* COPY_DST */,
        }),
        data: new ArrayBuffer(ARENA_BYTES),
        used: 0,
      };
      arena.used = 0;
      this.arenas.push(arena);
    }
    const offset = arena.used;
    const view = new DataView(arena.data, offset, size);
    entries.forEach(([t, v], i) => {
      if (t === 'f32') view.setFloat32(i * 4, v, true);
      else if (t === 'u32') view.setUint32(i * 4, v >>> 0, true);
      else view.setInt32(i * 4, v | 0, true);
    });
    arena.used += UNIFORM_SLOT;
    return { buffer: arena.buffer, offset, size };
  }

  /** Record one dispatch of a program. */
  run(p: Program): void {
    const [x, y = 1, z = 1] = p.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.gpu.report.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new Error(`program '${p.name}': workgroup count [${x}, ${y}, ${z}] exceeds the limit ${maxWg}`);
    }
    const pipe = this.pipeline(p);
    const entries: GPUBindGroupEntry[] = [];
    let i = 0;
    for (const b of [...p.inputs, ...p.outputs])
      entries.push({ binding: i++, resource: { buffer: b.buffer } });
    const slot = this.uniformSlot(p);
    if (slot)
      entries.push({ binding: i++, resource: { buffer: slot.buffer, offset: slot.offset, size: slot.size } });
    const group = this.device.createBindGroup({ layout: this.layout(p), entries });
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.pass.setPipeline(pipe);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(x, y, z);
    if (flag('LOG_DISPATCHES')) console.log(`dispatch ${p.name} [${x}, ${y}, ${z}]`);
    this.dispatches++;
    this.counters.dispatches++;
    if (this.dispatches >= flag('MAX_DISPATCHES_PER_SUBMIT')) this.flush();
  }

  /** Record a buffer-to-buffer copy (ends the open compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) this.pass.end();
    for (const a of this.arenas) this.device.queue.writeBuffer(a.buffer, 0, a.data, 0, a.used);
    const commands = this.encoder.finish();
    this.device.queue.submit([commands]);
    this.counters.submits++;
    this.encoder = null;
    this.pass = null;
    this.dispatches = 0;
    this.freeArenas.push(...this.arenas);
    this.arenas = [];
    this.pool.onSubmit();
  }

  /** Copy `bytes` bytes of a buffer back to the CPU (submits pending work first). */
  async read(buf: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
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
    this.device.queue.writeBuffer(buf, offset, data.buffer, data.byteOffset, data.byteLength);
  }
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
