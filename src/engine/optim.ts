/**
 * Adam with PyTorch's semantics (torch.optim.Adam, no weight decay, no amsgrad; spec §4.6): a
 * per-parameter step count, parameters without a gradient skipped (their moments and step count left
 * untouched), fused and multi-tensor: one dispatch per group of parameters (src/shaders/adam.ts; as
 * many per group as the adapter's storage-buffer limit allows). The moments are GPU tensors owned by the
 * optimizer and kept out of scopes; `state()` / `loadState()` save and restore them.
 *
 * Defaults are PyTorch's (betas (0.9, 0.999), eps 1e-8); RD++ passes betas (0.5, 0.999) explicitly.
 */
import { ADAM_WG, adamUniformNames, adamWgsl } from '../shaders/adam.js';
import { grid1d } from '../shaders/common.js';
import { zeros } from './ops/elementwise.js';
import type { ScalarType } from './program.js';
import { runtime } from './runtime.js';
import { keep, type Tensor, tensor } from './tensor.js';

export interface AdamOptions {
  lr: number;
  /** (β1, β2), default (0.9, 0.999) as in PyTorch. */
  betas?: [number, number];
  /** Added to the denominator, default 1e-8. */
  eps?: number;
}

/** The optimizer's state, parameter by parameter (in the order the parameters were given). */
export interface AdamState {
  /** Steps taken by each parameter (PyTorch's per-parameter `step`). */
  step: number[];
  /** First moments (exp_avg). */
  m: Tensor[];
  /** Second moments (exp_avg_sq). */
  v: Tensor[];
}

/** State to load: moments as GPU tensors or CPU arrays (copied; the caller keeps ownership). */
export interface AdamStateInput {
  step: number[];
  m: (Tensor | Float32Array)[];
  v: (Tensor | Float32Array)[];
}

export class Adam {
  readonly params: readonly Tensor[];
  /** Learning rate; may be changed between steps. */
  lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  private steps: number[];
  /** the parameters the last `stepWith` updated */
  private updatedWith: number[] | null = null;
  private m: Tensor[];
  private v: Tensor[];

  constructor(params: Tensor[], opts: { lr: number; betas?: [number, number]; eps?: number }) {
    const { lr, betas = [0.9, 0.999], eps = 1e-8 } = opts;
    if (params.length === 0) throw new Error('Adam: got an empty parameter list');
    if (new Set(params).size !== params.length) throw new Error('Adam: a parameter appears more than once');
    if (!(lr >= 0)) throw new Error(`Adam: invalid learning rate ${lr} (expected ≥ 0)`);
    if (!(eps >= 0)) throw new Error(`Adam: invalid eps ${eps} (expected ≥ 0)`);
    betas.forEach((b, i) => {
      if (!(b >= 0 && b < 1)) throw new Error(`Adam: invalid beta at index ${i}: ${b} (expected 0 ≤ β < 1)`);
    });
    this.params = [...params];
    this.lr = lr;
    this.betas = [betas[0], betas[1]];
    this.eps = eps;
    this.steps = params.map(() => 0);
    this.m = params.map((p) => keep(zeros(p.shape)));
    this.v = params.map((p) => keep(zeros(p.shape)));
  }

  /**
   * One update of every parameter that has a gradient: m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
   * p ← p − lr·(m/(1−β1^t)) / (√(v/(1−β2^t)) + eps) with t the parameter's own step count.
   * Parameters whose `.grad` is null are skipped.
   */
  step(): void {
    const due = this.due('Adam.step');
    if (due.length === 0) return;
    const scalars = tensor(this.scalars(due, true), [2 * this.params.length]);
    this.update(due, scalars);
    scalars.dispose();
  }

  /**
   * The step scalars of every parameter's next update, [lr/(1−β1^t), √(1−β2^t)] each, counting nothing:
   * for an update recorded with `stepWith` (the input of a captured graph), counted by `countSteps`.
   */
  nextScalars(): Float32Array {
    return this.scalars(
      this.params.map((_, i) => i),
      false,
    );
  }

  /**
   * Record the update of every parameter that has a gradient, with step scalars from `nextScalars()` on
   * the GPU, and remember which parameters it updates; the step counts are left alone (`countSteps`
   * counts them, once per update recorded or replayed from a graph).
   */
  stepWith(scalars: Tensor): void {
    if (scalars.size !== 2 * this.params.length)
      throw new Error(
        `Adam.stepWith: expected ${2 * this.params.length} step scalars, got ${scalars.describe()}`,
      );
    const due = this.due('Adam.stepWith');
    this.updatedWith = due;
    this.update(due, scalars);
  }

  /** Count the update that `stepWith` recorded last (or a graph replayed) as taken. */
  countSteps(): void {
    if (!this.updatedWith) throw new Error('Adam.countSteps: no update was recorded with stepWith');
    for (const i of this.updatedWith) this.steps[i]!++;
  }

  /** The parameters that have a gradient (checked against their shapes). */
  private due(what: string): number[] {
    const due: number[] = [];
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      if (g.size !== p.size)
        throw new Error(`${what}: gradient ${g.describe()} does not match parameter ${p.describe()}`);
      due.push(i);
    });
    return due;
  }

  /**
   * The scalars of the `due` parameters' next step (counted when `count`), in float64 then rounded as
   * PyTorch's floats are; the others' are 0.
   */
  private scalars(due: number[], count: boolean): Float32Array {
    const [b1, b2] = this.betas;
    const s = new Float32Array(2 * this.params.length);
    for (const i of due) {
      const t = this.steps[i]! + 1;
      if (count) this.steps[i] = t;
      s[2 * i] = this.lr / (1 - b1 ** t);
      s[2 * i + 1] = Math.sqrt(1 - b2 ** t);
    }
    return s;
  }

  /** Record the update of the `due` parameters, as few dispatches as the binding limit allows. */
  private update(due: number[], scalars: Tensor): void {
    const [b1, b2] = this.betas;
    const k = paramsPerDispatch();
    for (let at = 0; at < due.length; at += k) {
      const group = due.slice(at, at + k);
      const uniforms: Record<string, [ScalarType, number]> = {
        b1: ['f32', b1],
        c1: ['f32', 1 - b1],
        b2: ['f32', b2],
        c2: ['f32', 1 - b2],
        eps: ['f32', this.eps],
        total: ['u32', 0],
      };
      let wg = 0;
      group.forEach((i, j) => {
        const p = this.params[i]!;
        const u = adamUniformNames(j);
        uniforms[u.n] = ['u32', p.size];
        uniforms[u.w] = ['u32', wg];
        uniforms[u.index] = ['u32', i];
        wg += Math.ceil(p.size / ADAM_WG);
      });
      uniforms.total = ['u32', wg];
      runtime().run({
        name: 'adam',
        key: `${group.length}`,
        inputs: [
          { name: 's', buffer: scalars.buffer },
          ...group.map((i, j) => ({ name: `g${j}`, buffer: this.params[i]!.grad!.buffer })),
        ],
        outputs: group.flatMap((i, j) => [
          { name: `p${j}`, buffer: this.params[i]!.buffer },
          { name: `m${j}`, buffer: this.m[i]!.buffer },
          { name: `v${j}`, buffer: this.v[i]!.buffer },
        ]),
        uniforms,
        workgroups: grid1d(wg * ADAM_WG, ADAM_WG),
        wgsl: adamWgsl(group.length),
        cost: { bytes: 28 * group.reduce((a, i) => a + this.params[i]!.size, 0) },
      });
    }
  }

  /** Dispose every parameter's gradient and set it to null. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /**
   * The live state: step counts (a copy) and the optimizer's own moment tensors (read them to save a
   * checkpoint; do not dispose them — `dispose()` does).
   */
  state(): AdamState {
    return { step: [...this.steps], m: [...this.m], v: [...this.v] };
  }

  /** Restore state saved by `state()` (or read from a checkpoint): values are copied in. */
  loadState(s: AdamStateInput): void {
    const n = this.params.length;
    if (s.step.length !== n || s.m.length !== n || s.v.length !== n)
      throw new Error(
        `Adam.loadState: expected ${n} entries per field, got step ${s.step.length}, m ${s.m.length}, v ${s.v.length}`,
      );
    s.step.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0)
        throw new Error(`Adam.loadState: step[${i}] must be a non-negative integer, got ${t}`);
    });
    const check = (what: 'm' | 'v', i: number, src: Tensor | Float32Array): void => {
      const p = this.params[i]!;
      const size = src instanceof Float32Array ? src.length : src.size;
      if (size !== p.size) {
        const desc = src instanceof Float32Array ? `${size} values` : src.describe();
        throw new Error(`Adam.loadState: ${what}[${i}] (${desc}) does not match parameter ${p.describe()}`);
      }
    };
    for (let i = 0; i < n; i++) {
      check('m', i, s.m[i]!);
      check('v', i, s.v[i]!);
    }
    const rt = runtime();
    // queue writes run before commands still being recorded: submit those first, so order is kept
    if (s.m.some((t) => t instanceof Float32Array) || s.v.some((t) => t instanceof Float32Array)) rt.flush();
    const put = (dst: Tensor, src: Tensor | Float32Array): void => {
      if (src instanceof Float32Array) rt.write(dst.buffer, src);
      else if (src.storage !== dst.storage) rt.copy(src.buffer, 0, dst.buffer, 0, dst.byteLength);
    };
    for (let i = 0; i < n; i++) {
      put(this.m[i]!, s.m[i]!);
      put(this.v[i]!, s.v[i]!);
    }
    this.steps = [...s.step];
  }

  /** Free the moments (the parameters are the caller's). */
  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

/** Parameters per Adam dispatch: four storage bindings each (g, p, m, v) beside the scalars, at most 8. */
function paramsPerDispatch(): number {
  const limit = runtime().gpu.report.limits.maxStorageBuffersPerShaderStage;
  return Math.max(1, Math.min(8, Math.floor((limit - 1) / 4)));
}
