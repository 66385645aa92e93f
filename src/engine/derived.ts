/**
 * Derived copies: a buffer's data in another layout (a conv weight as its GEMMs read it), kept for as long
 * as that data stays the same, so a frozen network pays for the copy once instead of at every call.
 *
 * Why it is safe whoever writes the source: every way data reaches a buffer goes through the Runtime (a
 * dispatch's outputs, `copy`, `write`), which calls `invalidate(buffer)` first, and a tensor whose last
 * reference goes (its buffer back to the pool, soon someone else's) does the same. A kept copy therefore
 * never outlives the data it was made from: the optimizer's step, a checkpoint load or a reused buffer
 * drops it, and the next call makes a fresh one.
 *
 * What it costs: the copies are live memory (counted as such) until their source changes or goes. Callers
 * keep copies only of data that will be read again unchanged (ops/conv.ts: weights without gradient, or
 * any weight in inference); the flag KEEP_PACKED_WEIGHTS turns keeping off.
 */

/** What the cache holds: anything that can give its memory back (a Tensor). */
export interface Derived {
  readonly byteLength: number;
  dispose(): void;
}

export class DerivedCache {
  private bySource = new Map<GPUBuffer, Map<string, Derived>>();
  /**
   * Runs every `make` (the runtime sets it: a copy made during a graph capture is made outside the
   * capture, so the graph reads it like the weight it comes from instead of remaking it at every replay).
   */
  makeWith: (<T>(source: GPUBuffer, make: () => T) => T) | null = null;

  /** The copy of `source`'s data under `key`, made by `make` on a miss (or after `source` was written). */
  get<T extends Derived>(source: GPUBuffer, key: string, make: () => T): T {
    let copies = this.bySource.get(source);
    const hit = copies?.get(key);
    if (hit) return hit as T;
    const made = this.makeWith ? this.makeWith(source, make) : make();
    // make() writes only its own output, never `source`: the map read above is still current
    if (!copies) this.bySource.set(source, (copies = new Map()));
    copies.set(key, made);
    return made;
  }

  /** `source`'s data is about to change or go: dispose every copy made from it. */
  invalidate(source: GPUBuffer): void {
    if (this.bySource.size === 0) return;
    const copies = this.bySource.get(source);
    if (!copies) return;
    this.bySource.delete(source);
    for (const c of copies.values()) c.dispose();
  }

  /** Dispose every copy (to give memory back between phases). */
  clear(): void {
    for (const source of [...this.bySource.keys()]) this.invalidate(source);
  }

  /** Copies held, and their bytes. */
  stats(): { copies: number; bytes: number } {
    let copies = 0;
    let bytes = 0;
    for (const m of this.bySource.values())
      for (const c of m.values()) {
        copies++;
        bytes += c.byteLength;
      }
    return { copies, bytes };
  }
}
