/**
 * The benchmarks in the browser: the same cases and harness as `rdpp bench` (bench/), run on the page's
 * own WebGPU (Chromium's Dawn: a GPU, or SwiftShader without one). `rdpp bench --browser` drives this
 * from Node in headless Chromium (cli/commands/bench.ts); any page can call `rdpp.bench.run(spec)`.
 */
import { benchE2e, type E2eOptions, type E2eResult } from '../../bench/e2e.js';
import { type BenchReport, runBench } from '../../bench/harness.js';
import { allBenchCases } from '../../bench/index.js';
import {
  type Flags,
  flag,
  gemmPrecision,
  hasEngine,
  initEngine,
  type Precision,
  prepareMma,
  setFlags,
} from '../engine/index.js';
import { openBrowserGpu } from '../platform/browser.js';

export interface BrowserBenchSpec {
  what: 'kernels' | 'train' | 'infer';
  /** kernels: small shapes (what a CPU adapter such as SwiftShader can run) */
  small?: boolean;
  /** kernels: only cases whose "family name" matches this regular expression */
  filter?: string;
  /** kernels: timed runs per case */
  iters?: number;
  precision?: Precision;
  /** engine flags to set first (`rdpp bench --browser` passes the RDPP_* flags of its environment) */
  flags?: Partial<Flags>;
  /** train / infer: the workload (as `rdpp bench train|infer` parses it) */
  e2e?: E2eOptions;
}

/** Run one benchmark on this page's GPU; progress lines go to `log` (the console by default). */
export async function runBrowserBench(
  spec: BrowserBenchSpec,
  log: (line: string) => void = (l) => console.log(l),
): Promise<BenchReport | E2eResult> {
  if (!hasEngine()) initEngine(await openBrowserGpu());
  if (spec.flags && Object.keys(spec.flags).length > 0) {
    setFlags(spec.flags);
    log(`flags: ${JSON.stringify(spec.flags)}`);
  }
  if (spec.precision) setFlags({ PRECISION: spec.precision });
  if (flag('PRECISION') === 'f16') {
    gemmPrecision();
    log(await prepareMma());
  }
  if (spec.what === 'kernels') {
    const filter = spec.filter ? new RegExp(spec.filter) : null;
    const cases = allBenchCases(spec.small ? 'small' : 'full').filter(
      (c) => !filter || filter.test(`${c.family} ${c.name}`),
    );
    if (cases.length === 0) throw new Error('no benchmark case matches');
    return runBench(cases, spec.small ? 'small' : 'full', { iters: spec.iters ?? 10, log });
  }
  if (!spec.e2e) throw new Error(`bench ${spec.what}: the workload (spec.e2e) is missing`);
  return benchE2e(spec.what, spec.e2e);
}
