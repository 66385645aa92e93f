/**
 * GPU time per program, from timestamp queries: what `torch.profiler`'s `key_averages()` gives a PyTorch
 * user, for `rdpp profile`.
 *
 * While a profiler is attached to the runtime, every dispatch runs in a compute pass of its own whose
 * start and end are written to a query set (`timestampWrites`); at each submit the queries are resolved
 * into a buffer and copied to a mappable one, read asynchronously (the CPU keeps recording), and summed
 * per program name. One pass per dispatch adds a little overhead of its own and removes the overlap of
 * consecutive dispatches, so the sum is an upper bound of the busy time; wall time is measured beside it.
 *
 * Adapters without 'timestamp-query' cannot be profiled this way: `DispatchProfiler.supported` says so,
 * and `rdpp profile` then reports wall time only (gpu_ms null).
 */

/** What a dispatch costs, declared by the op that launches it (for achieved FLOP/s and bytes/s). */
export interface DispatchCost {
  flops?: number;
  bytes?: number;
}

export interface ProgramTiming {
  name: string;
  calls: number;
  gpuMs: number;
  flops: number;
  bytes: number;
}

interface Chunk {
  querySet: GPUQuerySet;
  resolve: GPUBuffer;
  readback: GPUBuffer;
  names: string[];
  costs: (DispatchCost | undefined)[];
}

/** Dispatches per query set (two timestamps each); the runtime submits when a set is full. */
const PER_CHUNK = 512;

export class DispatchProfiler {
  private current: Chunk | null = null;
  private spare: Chunk[] = [];
  private inFlight: Promise<void>[] = [];
  private totals = new Map<string, ProgramTiming>();
  private error: Error | null = null;

  static supported(device: GPUDevice): boolean {
    return device.features.has('timestamp-query');
  }

  constructor(private readonly device: GPUDevice) {
    if (!DispatchProfiler.supported(device))
      throw new Error("this GPU adapter has no 'timestamp-query': GPU times per program are unavailable");
  }

  private chunk(): Chunk {
    if (this.current) return this.current;
    this.current = this.spare.pop() ?? {
      querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * PER_CHUNK }),
      resolve: this.device.createBuffer({ size: 16 * PER_CHUNK, usage: 0x200 /* QUERY_RESOLVE */ | 0x4 }),
      readback: this.device.createBuffer({ size: 16 * PER_CHUNK, usage: 0x1 /* MAP_READ */ | 0x8 }),
      names: [],
      costs: [],
    };
    return this.current;
  }

  /** The timestamp writes for the next dispatch's pass. */
  next(name: string, cost?: DispatchCost): GPUComputePassTimestampWrites {
    const c = this.chunk();
    const k = c.names.length;
    c.names.push(name);
    c.costs.push(cost);
    return { querySet: c.querySet, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 };
  }

  /** True when the current query set is full (the runtime submits then). */
  full(): boolean {
    return (this.current?.names.length ?? 0) >= PER_CHUNK;
  }

  /** Called by the runtime just before finishing an encoder: resolve this submit's queries. */
  resolve(encoder: GPUCommandEncoder): void {
    const c = this.current;
    if (!c || c.names.length === 0) return;
    const n = c.names.length;
    encoder.resolveQuerySet(c.querySet, 0, 2 * n, c.resolve, 0);
    encoder.copyBufferToBuffer(c.resolve, 0, c.readback, 0, 16 * n);
  }

  /** Called after the submit: read this submit's timestamps when the GPU is done with them. */
  submitted(): void {
    const c = this.current;
    if (!c || c.names.length === 0) return;
    this.current = null;
    const p = c.readback.mapAsync(0x1 /* READ */).then(
      () => {
        const t = new BigInt64Array(c.readback.getMappedRange(0, 16 * c.names.length));
        c.names.forEach((name, k) => {
          const ns = Number(t[2 * k + 1]! - t[2 * k]!);
          const cost = c.costs[k];
          let e = this.totals.get(name);
          if (!e) this.totals.set(name, (e = { name, calls: 0, gpuMs: 0, flops: 0, bytes: 0 }));
          e.calls++;
          e.gpuMs += Math.max(ns, 0) / 1e6;
          e.flops += cost?.flops ?? 0;
          e.bytes += cost?.bytes ?? 0;
        });
        c.readback.unmap();
        c.names = [];
        c.costs = [];
        this.spare.push(c);
      },
      (e: unknown) => {
        this.error = e instanceof Error ? e : new Error(String(e));
      },
    );
    this.inFlight.push(p);
  }

  /** Wait until every submitted dispatch's time has been read. */
  async drain(): Promise<void> {
    while (this.inFlight.length) await this.inFlight.shift();
    if (this.error) throw this.error;
  }

  /** Totals per program since the last reset, slowest first. */
  programs(): ProgramTiming[] {
    return [...this.totals.values()].sort((a, b) => b.gpuMs - a.gpuMs);
  }

  reset(): void {
    this.totals.clear();
  }

  dispose(): void {
    for (const c of [...this.spare, ...(this.current ? [this.current] : [])]) {
      c.querySet.destroy();
      c.resolve.destroy();
      c.readback.destroy();
    }
    this.spare = [];
    this.current = null;
  }
}
