/**
 * GPU memory: a buffer pool with size classes, and the counters tests, benchmarks and `rdpp profile` read.
 *
 * Why a pool: creating and destroying GPU buffers costs far more than the op on small tensors, and a
 * training step or an inference batch needs the same buffers every time. Buffers are grouped in size
 * classes (powers of two split into 8 steps, so at most 12.5 % is wasted) and reused.
 *
 * What the pool keeps: by default everything it has handed out once (the observed working set), so a warm
 * training step or inference batch creates no buffer at all. A cap on *reserved* bytes (live + idle +
 * pending; flag POOL_MAX_RESERVED_BYTES, default unbounded because WebGPU does not tell how much memory
 * the device has) makes a miss first destroy the least recently used idle buffers; `trim()` releases all
 * idle buffers explicitly (between phases that need different shapes, under memory pressure).
 *
 * When a buffer may be reused: a buffer released while commands that use it are recorded but not yet
 * submitted is *pending*. GPU commands recorded later may write it at once (WebGPU orders a pass's
 * dispatches and copies, so a later write cannot overtake an earlier read): the next layer's output
 * reuses the previous layer's input without waiting for a submit, which keeps reserved memory close to
 * live memory. Only an upload (`queue.writeBuffer`, which runs before every command not yet submitted)
 * must wait until the next submit, so `acquire(…, { upload: true })` takes submitted-free buffers only.
 * After a submit, queue order makes any reuse safe.
 *
 * Counters: `live` = bytes handed out and not yet released, `pooled` = idle bytes kept for reuse,
 * `reserved` = every byte the pool holds on the device (live + pooled + pending), `peak*` = high-water
 * marks (reset with resetPeak()), `created*` / `destroyed*` = buffers made and freed over the pool's life.
 */

export interface MemoryStats {
  liveBytes: number;
  liveBuffers: number;
  pooledBytes: number;
  pendingBytes: number;
  reservedBytes: number;
  peakLiveBytes: number;
  peakReservedBytes: number;
  /** Bytes ever created (including those since destroyed); grows only when the pool misses. */
  createdBytes: number;
  createdBuffers: number;
  destroyedBuffers: number;
}

const MIN_BYTES = 256;

/** The size class a request of `bytes` is served from. */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BYTES) return MIN_BYTES;
  const p = 2 ** Math.floor(Math.log2(bytes));
  if (p === bytes) return bytes;
  const step = p / 8;
  return Math.ceil(bytes / step) * step;
}

export const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

interface Idle {
  buffer: GPUBuffer;
  /** creation order: a free list hands out its lowest id first */
  id: number;
  /** when it became idle (a counter, for least-recently-used eviction) */
  since: number;
}

export class BufferPool {
  /** idle buffers no unsubmitted command uses, per size class, sorted by id (highest first) */
  private free = new Map<number, Idle[]>();
  /** idle buffers still used by recorded, unsubmitted commands (reusable by GPU commands, not uploads) */
  private pending = new Map<number, Idle[]>();
  private sizes = new WeakMap<GPUBuffer, number>();
  private ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;
  private clock = 0;
  private stats: MemoryStats = {
    liveBytes: 0,
    liveBuffers: 0,
    pooledBytes: 0,
    pendingBytes: 0,
    reservedBytes: 0,
    peakLiveBytes: 0,
    peakReservedBytes: 0,
    createdBytes: 0,
    createdBuffers: 0,
    destroyedBuffers: 0,
  };
  /** Called whenever the pool destroys a buffer (the runtime drops cached bind groups that name it). */
  onDestroy: ((buf: GPUBuffer) => void) | null = null;
  /** Called with every buffer handed out (a graph capture notes the buffers born during it). */
  onAcquire: ((buf: GPUBuffer) => void) | null = null;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxReservedBytes: () => number,
    private readonly maxBufferBytes: number,
  ) {}

  /**
   * A storage buffer of at least `bytes` bytes (contents undefined). `upload`: the caller will fill it
   * with queue.writeBuffer, so it must not be a buffer that unsubmitted commands still use.
   */
  acquire(bytes: number, o: { label?: string; upload?: boolean } = {}): GPUBuffer {
    const size = sizeClass(Math.max(bytes, 4));
    if (size > this.maxBufferBytes) {
      throw new Error(
        `a tensor of ${(bytes / 2 ** 20).toFixed(1)} MiB exceeds this GPU's largest storage binding ` +
          `(${(this.maxBufferBytes / 2 ** 20).toFixed(0)} MiB); use a smaller batch or image size`,
      );
    }
    let buf: GPUBuffer;
    const pending = o.upload ? undefined : this.pending.get(size)?.pop();
    const idle = pending ?? this.free.get(size)?.pop();
    if (pending) {
      buf = pending.buffer;
      this.stats.pendingBytes -= size;
    } else if (idle) {
      buf = idle.buffer;
      this.stats.pooledBytes -= size;
    } else {
      this.makeRoom(size);
      buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label: o.label });
      this.sizes.set(buf, size);
      this.ids.set(buf, this.nextId++);
      this.stats.createdBytes += size;
      this.stats.createdBuffers++;
      this.stats.reservedBytes += size;
      if (this.stats.reservedBytes > this.stats.peakReservedBytes)
        this.stats.peakReservedBytes = this.stats.reservedBytes;
    }
    this.countLive(size);
    this.onAcquire?.(buf);
    return buf;
  }

  private countLive(size: number): void {
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    if (this.stats.liveBytes > this.stats.peakLiveBytes) this.stats.peakLiveBytes = this.stats.liveBytes;
  }

  /**
   * Take an idle buffer (free or pending) out of the pool for good, as if acquired: a captured graph keeps
   * the intermediates its commands use (released to the pool during the capture) so that nobody else gets
   * them. False if `buf` is not idle here (live, destroyed, or not this pool's).
   */
  claim(buf: GPUBuffer): boolean {
    const size = this.sizes.get(buf);
    if (size === undefined) return false;
    for (const [lists, counter] of [
      [this.free, 'pooledBytes'],
      [this.pending, 'pendingBytes'],
    ] as const) {
      const list = lists.get(size);
      const at = list?.findIndex((e) => e.buffer === buf) ?? -1;
      if (at < 0) continue;
      list!.splice(at, 1);
      if (list!.length === 0) lists.delete(size);
      this.stats[counter] -= size;
      this.countLive(size);
      return true;
    }
    return false;
  }

  /** Give a buffer back. `inFlight`: commands using it are recorded but not submitted yet. */
  release(buf: GPUBuffer, inFlight: boolean): void {
    const size = this.sizes.get(buf);
    if (size === undefined) throw new Error('BufferPool.release: buffer does not belong to this pool');
    this.stats.liveBytes -= size;
    this.stats.liveBuffers--;
    if (inFlight) {
      insertById(this.pending, size, { buffer: buf, id: this.ids.get(buf)!, since: this.clock++ });
      this.stats.pendingBytes += size;
    } else {
      insertById(this.free, size, { buffer: buf, id: this.ids.get(buf)!, since: this.clock++ });
      this.stats.pooledBytes += size;
    }
  }

  /** Called after each submit: pending buffers become free for any use. */
  onSubmit(): void {
    for (const [size, list] of this.pending) for (const e of list) insertById(this.free, size, e);
    this.pending.clear();
    this.stats.pooledBytes += this.stats.pendingBytes;
    this.stats.pendingBytes = 0;
  }

  /** Under the reserved-bytes cap, destroy the least recently used idle buffers until `size` fits. */
  private makeRoom(size: number): void {
    const over = this.stats.reservedBytes + size - this.maxReservedBytes();
    if (over > 0) this.evictOldest(over);
  }

  /** Destroy idle buffers (all of them by default; or the least recently used until `keepBytes` remain). */
  trim(keepBytes = 0): void {
    this.evictOldest(this.stats.pooledBytes - keepBytes);
  }

  /** Destroy idle buffers, least recently used first, until at least `bytes` bytes are freed (or none is left). */
  private evictOldest(bytes: number): void {
    if (bytes <= 0 || this.stats.pooledBytes === 0) return;
    const idle: { size: number; entry: Idle }[] = [];
    for (const [size, list] of this.free) for (const entry of list) idle.push({ size, entry });
    idle.sort((a, b) => a.entry.since - b.entry.since);
    const drop = new Set<Idle>();
    let freed = 0;
    for (const { size, entry } of idle) {
      if (freed >= bytes) break;
      drop.add(entry);
      freed += size;
    }
    for (const [size, list] of this.free) {
      for (const e of list) if (drop.has(e)) this.destroy(e.buffer, size);
      const keep = list.filter((e) => !drop.has(e));
      if (keep.length) this.free.set(size, keep);
      else this.free.delete(size);
    }
  }

  private destroy(buf: GPUBuffer, size: number): void {
    this.onDestroy?.(buf);
    buf.destroy();
    this.stats.pooledBytes -= size;
    this.stats.reservedBytes -= size;
    this.stats.destroyedBuffers++;
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
    this.stats.peakReservedBytes = this.stats.reservedBytes;
  }

  snapshot(): MemoryStats {
    return { ...this.stats };
  }
}

/**
 * Free lists are kept sorted by id, highest first, so `pop()` hands out the lowest id. Which buffer a
 * request gets then depends only on the set of idle buffers, not on the order they were released in: a
 * step that starts with the same idle set gets the same buffers as the step before, so the runtime's
 * cached bind groups (keyed by buffers) are all reused.
 */
function insertById(lists: Map<number, Idle[]>, size: number, e: Idle): void {
  let list = lists.get(size);
  if (!list) lists.set(size, (list = []));
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.id > e.id) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, e);
}
