/**
 * GPU memory: a buffer pool with size classes, and the counters tests and benchmarks read.
 *
 * Why a pool: creating and destroying GPU buffers per op costs far more than the op on small tensors,
 * and fragments memory on large ones. Buffers are grouped in size classes (powers of two split into 8
 * steps, so at most 12.5 % is wasted) and reused.
 *
 * When a buffer may be reused: a buffer released while commands that use it are recorded but not yet
 * submitted goes to a *pending* list and becomes free only at the next submit. After a submit, queue
 * order makes reuse safe (a later writeBuffer or dispatch runs after the submitted work).
 *
 * Counters: `live` = bytes handed out and not yet released, `pooled` = idle bytes kept for reuse,
 * `peakLive` = the high-water mark of `live` (reset with resetPeak()).
 */

export interface MemoryStats {
  liveBytes: number;
  liveBuffers: number;
  pooledBytes: number;
  pendingBytes: number;
  peakLiveBytes: number;
  /** Bytes ever created (including those since destroyed); grows only when the pool misses. */
  createdBytes: number;
  createdBuffers: number;
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

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private pending: GPUBuffer[] = [];
  private sizes = new WeakMap<GPUBuffer, number>();
  private stats: MemoryStats = {
    liveBytes: 0,
    liveBuffers: 0,
    pooledBytes: 0,
    pendingBytes: 0,
    peakLiveBytes: 0,
    createdBytes: 0,
    createdBuffers: 0,
  };

  constructor(
    private readonly device: GPUDevice,
    private readonly maxIdleBytes: () => number,
    private readonly maxBufferBytes: number,
  ) {}

  /** A storage buffer of at least `bytes` bytes (contents undefined). */
  acquire(bytes: number, label?: string): GPUBuffer {
    const size = sizeClass(Math.max(bytes, 4));
    if (size > this.maxBufferBytes) {
      throw new Error(
        `a tensor of ${(bytes / 2 ** 20).toFixed(1)} MiB exceeds this GPU's largest storage binding ` +
          `(${(this.maxBufferBytes / 2 ** 20).toFixed(0)} MiB); use a smaller batch or image size`,
      );
    }
    const list = this.free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.stats.pooledBytes -= size;
    } else {
      buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
      this.sizes.set(buf, size);
      this.stats.createdBytes += size;
      this.stats.createdBuffers++;
    }
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    if (this.stats.liveBytes > this.stats.peakLiveBytes) this.stats.peakLiveBytes = this.stats.liveBytes;
    return buf;
  }

  /** Give a buffer back. `inFlight`: commands using it are recorded but not submitted yet. */
  release(buf: GPUBuffer, inFlight: boolean): void {
    const size = this.sizes.get(buf);
    if (size === undefined) throw new Error('BufferPool.release: buffer does not belong to this pool');
    this.stats.liveBytes -= size;
    this.stats.liveBuffers--;
    if (inFlight) {
      this.pending.push(buf);
      this.stats.pendingBytes += size;
    } else {
      this.toFree(buf, size);
    }
  }

  /** Called after each submit: pending buffers become reusable. */
  onSubmit(): void {
    for (const buf of this.pending) this.toFree(buf, this.sizes.get(buf)!);
    this.pending.length = 0;
    this.stats.pendingBytes = 0;
  }

  private toFree(buf: GPUBuffer, size: number): void {
    if (this.stats.pooledBytes + size > this.maxIdleBytes()) {
      buf.destroy();
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.stats.pooledBytes += size;
  }

  /** Destroy every idle buffer (e.g. between benchmark cases). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.pooledBytes = 0;
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
  }

  snapshot(): MemoryStats {
    return { ...this.stats };
  }
}
