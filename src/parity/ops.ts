/**
 * Op parity: each op family registers a runner for the fixture cases it understands. A runner uploads
 * the case's inputs, runs the engine op (forward and backward), and returns what to compare. The parity
 * command, the tests and the browser test all run cases through `runOpCase`, so they check the same thing.
 */

import { gemmPrecision } from '../engine/precision.js';
import { relError } from './compare.js';
import { opTolerance } from './f16.js';
import type { HostTensor, OpCase } from './fixture.js';

export interface Comparison {
  /** What is compared, e.g. 'y', 'dx', 'value'. */
  name: string;
  got: ArrayLike<number> | number;
  want: ArrayLike<number> | number;
}

export interface OpRunner {
  /** Which case names this runner handles. */
  match: RegExp;
  run: (c: OpCase) => Promise<Comparison[]>;
}

const runners: OpRunner[] = [];

export function registerOpRunner(r: OpRunner): void {
  runners.push(r);
}

export function findRunner(caseName: string): OpRunner | undefined {
  return runners.find((r) => r.match.test(caseName));
}

export interface CaseResult {
  case: string;
  tolerance: number;
  /** Per compared tensor or scalar: its error under the fixture's rule. */
  errors: { name: string; error: number }[];
  maxError: number;
  pass: boolean;
  /** Set when the case could not be run (no runner, or it threw). */
  problem?: string;
}

/** The default tolerance when a fixture names none for a case (the README's floor). */
export const DEFAULT_TOLERANCE = 1e-5;

export async function runOpCase(c: OpCase): Promise<CaseResult> {
  // under PRECISION=f16 the GEMM cases get the f16 tolerance (parity/f16.ts); every other op stays f32
  const tolerance = opTolerance(c.name, c.tolerance ?? DEFAULT_TOLERANCE, gemmPrecision());
  const runner = findRunner(c.name);
  if (!runner)
    return {
      case: c.name,
      tolerance,
      errors: [],
      maxError: Number.NaN,
      pass: false,
      problem: 'no runner for this case',
    };
  try {
    const comps = await runner.run(c);
    const errors = comps.map((k) => ({ name: k.name, error: relError(k.got, k.want) }));
    const maxError = Math.max(0, ...errors.map((e) => e.error));
    return { case: c.name, tolerance, errors, maxError, pass: errors.length > 0 && maxError <= tolerance };
  } catch (e) {
    return {
      case: c.name,
      tolerance,
      errors: [],
      maxError: Number.NaN,
      pass: false,
      problem: (e as Error).message,
    };
  }
}

/** Shorthand for runners: compare a read-back tensor with the fixture tensor `key`. */
export function against(c: OpCase, key: string, got: ArrayLike<number>, name = key): Comparison {
  const want: HostTensor = c.t(key);
  if (got.length !== want.data.length)
    throw new Error(`${c.name}.${key}: got ${got.length} values, want ${want.data.length}`);
  return { name, got, want: want.data };
}
