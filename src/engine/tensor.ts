/**
 * Tensor: a shape, a dtype and a GPU buffer, plus what autograd needs (`requiresGrad`, `grad`, `node`).
 *
 * Ownership (the rules, also in the README):
 *   - Every tensor owns one reference to its Storage; `reshape` makes a new tensor sharing the storage.
 *   - `dispose()` drops the reference; the buffer returns to the pool when the last one goes.
 *   - Inside `scope(fn)`, every tensor created is disposed when `fn` returns, except the tensors it
 *     returns (directly, in arrays or in plain objects) and those passed to `keep()`.
 *   - Parameters and optimizer state are created outside scopes (or kept) and live until disposed.
 * There is no FinalizationRegistry: leaks show up in the memory counters, deterministically.
 */
import type { GradNode } from './autograd.js';
import { halfBitsToFloat } from './io/f16.js';
import { tagBufferDtype } from './program.js';
import { runtime } from './runtime.js';

/**
 * Storage types. Every op reads and writes `f32`; `f16` (2 bytes, needs the device feature shader-f16) is
 * only produced and read by the ops that say so — the activation ops conv2d(Fused), convTranspose2d(Fused),
 * batchNorm(Relu), instanceNorm(LeakyRelu), addRelu, concat and maxPool2d (without gradient), plus cast,
 * and reading only, the cosines and cosine losses — for the activations under PRECISION=f16
 * (engine/precision.ts: the frozen teacher's, the whole model's in evaluation, the student's in training).
 * Gradients are always f32, an f16 tensor's too. Any other op given an f16 tensor stops with an error
 * naming it (Runtime.run checks every binding against its buffer's type).
 */
export type DType = 'f32' | 'f16';

export const BYTES: Record<DType, number> = { f32: 4, f16: 2 };

export class Storage {
  refs = 1;
  constructor(
    readonly buffer: GPUBuffer,
    readonly byteLength: number,
  ) {}
}

let nextId = 1;

/** Installed by autograd.ts (which imports this file, so the dependency cannot go the other way). */
let viewRecorder: ((src: Tensor, out: Tensor) => void) | null = null;

export function setViewRecorder(f: (src: Tensor, out: Tensor) => void): void {
  viewRecorder = f;
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  name: string | undefined;
  /** Recorded backward rules that will read this tensor's data (PyTorch's saved tensors). */
  savedBy = 0;
  /** Its owner gave it up (`release`) while a backward rule still needs it: freed when none does. */
  dropped = false;
  private disposed = false;
  /** The data is gone but the autograd node stays (a released tensor that gradients still pass through). */
  private dataFreed = false;

  constructor(
    shape: readonly number[],
    readonly storage: Storage,
    readonly dtype: DType = 'f32',
  ) {
    this.shape = Object.freeze([...shape]);
    this.size = numel(shape);
    tagBufferDtype(storage.buffer, dtype);
    trackInScope(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get buffer(): GPUBuffer {
    if (this.disposed) throw new Error(`tensor ${this.describe()} was used after dispose()`);
    if (this.dataFreed)
      throw new Error(
        `tensor ${this.describe()} was released but is read again (a backward rule that reads it must list it as saved)`,
      );
    return this.storage.buffer;
  }

  get byteLength(): number {
    return this.size * BYTES[this.dtype];
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  describe(): string {
    return `${this.name ?? `#${this.id}`}[${this.shape.join(', ')}]${this.dtype === 'f32' ? '' : ` ${this.dtype}`}`;
  }

  dispose(): void {
    if (this.disposed) return;
    this.freeData();
    this.disposed = true;
    this.node = null;
  }

  /**
   * Give the buffer back but keep the autograd node: gradients still flow through this tensor to its
   * inputs, but nothing may read its values again. Used by `release` in code that records gradients.
   */
  freeData(): void {
    if (this.dataFreed || this.disposed) return;
    this.dataFreed = true;
    if (--this.storage.refs === 0) {
      const rt = runtime();
      rt.invalidate(this.storage.buffer);
      rt.pool.release(this.storage.buffer, rt.recording);
    }
  }

  get isFreed(): boolean {
    return this.dataFreed || this.disposed;
  }

  /**
   * A tensor with the same data and another shape of the same size (shares the buffer). Differentiable
   * like PyTorch's view: when this tensor requires a gradient, autograd records the view, so a loss
   * computed on a flattened feature map still trains the layers that produced it.
   */
  view(shape: readonly number[]): Tensor {
    const s = resolveShape(shape, this.size);
    this.storage.refs++;
    const out = new Tensor(s, this.storage, this.dtype);
    if (this.requiresGrad) viewRecorder?.(this, out);
    return out;
  }

  /** Read the values back to the CPU (submits pending GPU work). */
  async read(): Promise<Float32Array> {
    const data = await runtime().read(this.buffer, this.byteLength);
    if (this.dtype === 'f32') return new Float32Array(data);
    const half = new Uint16Array(data, 0, this.size);
    const out = new Float32Array(this.size);
    for (let i = 0; i < half.length; i++) out[i] = halfBitsToFloat(half[i]!);
    return out;
  }

  /** Read a single-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs a single-element tensor, got ${this.describe()}`);
    return (await this.read())[0]!;
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

function resolveShape(shape: readonly number[], size: number): number[] {
  const s = [...shape];
  const free = s.indexOf(-1);
  if (free >= 0) s[free] = size / numel(s.filter((_, i) => i !== free));
  if (numel(s) !== size) throw new Error(`cannot view ${size} elements as [${shape.join(', ')}]`);
  return s;
}

/**
 * An uninitialised tensor from the pool. `upload`: it will be filled from the CPU (runtime().write),
 * so its buffer must not be one that recorded, unsubmitted commands still use (see memory.ts).
 */
export function empty(shape: readonly number[], dtype: DType = 'f32', o: { upload?: boolean } = {}): Tensor {
  const bytes = numel(shape) * BYTES[dtype];
  const buf = runtime().pool.acquire(bytes, o);
  return new Tensor(shape, new Storage(buf, bytes), dtype);
}

/** Upload CPU values. */
export function tensor(data: ArrayLike<number> | Float32Array, shape: readonly number[]): Tensor {
  const n = numel(shape);
  if (data.length !== n)
    throw new Error(`tensor(): ${data.length} values do not fill shape [${shape.join(', ')}]`);
  const t = empty(shape, 'f32', { upload: true });
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  runtime().write(t.buffer, f);
  return t;
}

// ---- scopes ----

const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Exempt tensors from disposal by the enclosing scope (e.g. parameters, gradients, running stats). */
export function keep<T extends Tensor | null | undefined>(t: T): T {
  if (t) for (const s of scopes) s.delete(t);
  return t;
}

function collect(v: unknown, out: Set<Tensor>): void {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collect(x, out);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)
    for (const x of Object.values(v)) collect(x, out);
}

/** Run `fn`; dispose every tensor it created except the ones it returns or keeps. */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Tensor>();
  scopes.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise)
    throw new Error('scope(fn): fn must be synchronous; await outside the scope');
  const out = new Set<Tensor>();
  collect(result, out);
  for (const t of mine) {
    if (out.has(t)) trackInScope(t);
    else t.dispose();
  }
  return result;
}
