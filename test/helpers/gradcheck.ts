/**
 * Finite-difference gradient check (after torchlette's gradcheck): compares the engine's backward with
 * double-sided differences of L(x) = Σ r ⊙ f(x) for a fixed random r, at sampled elements of every input.
 * The GPU computes in float32, so the reduction Σ r ⊙ f(x) is done on the CPU in float64 and the step is
 * relative to the input's scale; the check reports the worst error per input relative to the largest
 * gradient entry.
 */
import { backward, noGrad, scope, type Tensor, tensor } from '../../src/engine/index.js';

export interface GradcheckOptions {
  /** step, relative to max(1, |x_i|) (default 1e-2: float32 needs big steps) */
  h?: number;
  /** elements sampled per input (default 24) */
  samples?: number;
  seed?: number;
}

export interface GradcheckResult {
  /** per input: max |numeric − analytic| / max |analytic| over the sampled elements */
  errors: number[];
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Random values in [-1, 1) for test inputs (seeded). */
export function randn(n: number, seed = 1, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

export async function gradcheck(
  f: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  opts: GradcheckOptions = {},
): Promise<GradcheckResult> {
  const h = opts.h ?? 1e-2;
  const samples = opts.samples ?? 24;
  const rand = rng(opts.seed ?? 7);

  const evalL = async (
    datas: Float32Array[],
    r: Float64Array | null,
  ): Promise<{ L: number; out: Float32Array }> => {
    const y = noGrad(() => scope(() => f(...datas.map((d, i) => tensor(d, inputs[i]!.shape)))));
    const out = await y.read();
    y.dispose();
    let L = 0;
    if (r) for (let i = 0; i < out.length; i++) L += r[i]! * out[i]!;
    return { L, out };
  };

  // the weights r, and the analytic gradients
  const first = await evalL(
    inputs.map((x) => x.data),
    null,
  );
  const r = new Float64Array(first.out.length);
  for (let i = 0; i < r.length; i++) r[i] = Math.fround(rand() * 2 - 1);
  const xs = inputs.map((x) => {
    const t = tensor(x.data, x.shape);
    t.requiresGrad = true;
    return t;
  });
  const y = scope(() => {
    const out = f(...xs);
    backward(out, tensor(Float32Array.from(r), out.shape));
    return out;
  });
  y.dispose();
  const analytic: Float32Array[] = [];
  for (const x of xs) {
    analytic.push(x.grad ? await x.grad.read() : new Float32Array(x.size));
    x.grad?.dispose();
    x.dispose();
  }

  const errors: number[] = [];
  for (let k = 0; k < inputs.length; k++) {
    const base = inputs[k]!.data;
    const ana = analytic[k]!;
    let scale = 0;
    for (const v of ana) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    const n = base.length;
    const picks =
      n <= samples ? [...Array(n).keys()] : Array.from({ length: samples }, () => Math.floor(rand() * n));
    for (const i of picks) {
      const step = h * Math.max(1, Math.abs(base[i]!));
      const plus = Float32Array.from(base);
      const minus = Float32Array.from(base);
      plus[i] = base[i]! + step;
      minus[i] = base[i]! - step;
      const datas = (d: Float32Array) => inputs.map((x, j) => (j === k ? d : x.data));
      const Lp = (await evalL(datas(plus), r)).L;
      const Lm = (await evalL(datas(minus), r)).L;
      const num = (Lp - Lm) / (Math.fround(plus[i]!) - Math.fround(minus[i]!));
      worst = Math.max(worst, Math.abs(num - ana[i]!));
    }
    errors.push(scale > 0 ? worst / scale : worst);
  }
  return { errors };
}
