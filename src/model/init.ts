/**
 * Weight initialisation: the official code's rules (spec §2.6) with a seeded RNG, and the golden
 * fixtures' closed-form "formula" weights (fixtures README) so tests rebuild the reference networks exactly.
 * Everything here computes on the CPU into Float32Arrays; the model uploads them once.
 */

/** A seeded PRNG (xoshiro128**), with uniform and normal draws; its state can be saved and restored. */
export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number | Uint32Array) {
    if (seed instanceof Uint32Array) {
      this.s = Uint32Array.from(seed);
      return;
    }
    // splitmix32 to spread the seed over the state
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** Uniform 32-bit integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return (this.nextU32() + (this.nextU32() >>> 11) / 2 ** 21) / 2 ** 32;
  }

  /** Uniform integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo));
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): number[] {
    const p = [...Array(n).keys()];
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }

  /** The state, for checkpoints (resume continues the same sequence). */
  state(): number[] {
    return [...this.s];
  }

  static fromState(state: number[]): Rng {
    if (state.length !== 4) throw new Error('Rng.fromState: expected 4 integers');
    return new Rng(Uint32Array.from(state));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---- the official initialisation rules (spec §2.6) ----

export type InitRule =
  | { kind: 'kaiming_normal_fan_out' } // OCBE/decoder Conv2d: N(0, 2 / (out·kh·kw))
  | { kind: 'uniform_fan_in'; fanIn: number } // PyTorch default conv/deconv: U(±1/√fan_in)
  | { kind: 'const'; value: number }; // BN: weight 1, bias 0, running mean 0, running var 1

export function initTensor(shape: readonly number[], rule: InitRule, rng: Rng): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  switch (rule.kind) {
    case 'kaiming_normal_fan_out': {
      const fanOut = shape[0]! * (shape[2] ?? 1) * (shape[3] ?? 1);
      const std = Math.sqrt(2 / fanOut);
      for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      break;
    }
    case 'uniform_fan_in': {
      const b = 1 / Math.sqrt(rule.fanIn);
      for (let i = 0; i < n; i++) out[i] = (rng.uniform() * 2 - 1) * b;
      break;
    }
    case 'const':
      out.fill(rule.value);
      break;
  }
  return out;
}

// ---- the golden fixtures' formula weights (fixtures/golden/README.md) ----

/** phase(name) = Σ_j charCode(name[j])·(j+1) mod 9973. */
export function formulaPhase(name: string): number {
  let s = 0;
  for (let j = 0; j < name.length; j++) s += name.charCodeAt(j) * (j + 1);
  return s % 9973;
}

/** base[i] = 2·x/2³² − 1 with x the murmur3-finalised counter (exact in float64). */
export function formulaBase(n: number, phase: number): Float64Array {
  const out = new Float64Array(n);
  const off = Math.imul(phase, 0x9e3779b9);
  for (let i = 0; i < n; i++) {
    let x = (i + off) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b) >>> 0;
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35) >>> 0;
    x ^= x >>> 16;
    x >>>= 0;
    out[i] = (x / 4294967296) * 2 - 1;
  }
  return out;
}

/** The formula value of a state-dict tensor (name includes the module prefix, e.g. 'encoder.conv1.weight'). */
const KERAS_BN_ROLES: Record<string, string> = {
  gamma: 'weight',
  beta: 'bias',
  mean: 'running_mean',
  var: 'running_var',
};

export function formulaTensor(name: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const base = formulaBase(n, formulaPhase(name));
  const out = new Float32Array(n);
  // Keras BN names (gamma, beta, mean, var) follow the torch rules of the same role
  const raw = name.slice(name.lastIndexOf('.') + 1);
  const leaf = KERAS_BN_ROLES[raw] ?? raw;
  if (shape.length === 4) {
    const s = Math.sqrt(6 / (n / shape[0]!));
    for (let i = 0; i < n; i++) out[i] = base[i]! * s;
  } else if (shape.length === 2) {
    const s = Math.sqrt(3 / shape[1]!);
    for (let i = 0; i < n; i++) out[i] = base[i]! * s;
  } else {
    for (let i = 0; i < n; i++) {
      const b = base[i]!;
      if (leaf === 'weight') out[i] = 1 + 0.1 * b;
      else if (leaf === 'bias') out[i] = 0.1 * b;
      else if (leaf === 'running_mean') out[i] = 0.1 * b;
      else if (leaf === 'running_var') out[i] = 1 + 0.5 * b * b;
      else throw new Error(`formulaTensor: no rule for 1-D tensor '${name}'`);
    }
  }
  return out;
}
