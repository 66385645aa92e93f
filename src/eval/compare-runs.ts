/**
 * Two precisions (or any two settings of `precision`) held against each other over several training
 * runs, as `rdpp compare` reports it: each run's test-set metrics after its last epoch (the last
 * `--eval-every` record of its train.jsonl), runs paired when everything in their configuration but the
 * precision is the same (the seed above all), and per metric the mean paired difference with its 95 %
 * confidence interval (Student's t), against a tolerance in points.
 *
 * Why paired runs and an interval: on small real sets one run per precision cannot tell a precision's
 * effect from the trajectory's. Adam's first updates turn any rounding difference — float32 against
 * float32 with other summation orders included — into another trajectory, and on tire at 64² that moved
 * image AUROC by up to 3.6 points (bench/results/tire-cpu-lavapipe/README.md). A verdict says `within`
 * only when the whole interval lies inside ±tolerance, `outside` when it lies wholly beyond, and
 * `undecided` otherwise (more pairs narrow it).
 *
 * Platform-neutral: the caller reads the files.
 */
import { parseTrainLog } from '../report/training-chart.js';

export const COMPARED_METRICS = ['imageAuroc', 'pixelAuroc', 'auproOfficial', 'auproStandard'] as const;
export type ComparedMetric = (typeof COMPARED_METRICS)[number];

/** A run's configuration and its test metrics after its last epoch. */
export interface RunResult {
  name: string;
  precision: string;
  seed: number;
  /** the configuration without the seed (what must match for two runs to pair), as JSON */
  setting: string;
  epochs: number;
  metrics: Record<ComparedMetric, number | null>;
}

/**
 * A run from its train.jsonl text, or the reason it cannot be compared (no start line, parts in different
 * precisions, not finished, no test evaluation at its last epoch).
 */
export function runResult(name: string, log: string): RunResult | { name: string; skipped: string } {
  const { starts, testEvals } = parseTrainLog(log);
  if (starts.length === 0) return { name, skipped: 'no start line (not a train.jsonl of rdpp train)' };
  const precisions = new Set(starts.map((s) => String(s.precision ?? 'f32')));
  if (precisions.size > 1)
    return { name, skipped: `its parts ran in different precisions (${[...precisions].join(', ')})` };
  const config = starts[0]!.config as Record<string, unknown> | undefined;
  if (!config || typeof config.seed !== 'number' || typeof config.epochs !== 'number')
    return { name, skipped: 'its start line has no configuration' };
  const { seed, ...setting } = config;
  const epochs = config.epochs as number;
  const last = testEvals.at(-1);
  if (!last || last.epoch !== epochs)
    return {
      name,
      skipped: last
        ? `its last test evaluation is at epoch ${last.epoch} of ${epochs} (unfinished?)`
        : 'no test evaluation (train with --eval-every)',
    };
  return {
    name,
    precision: [...precisions][0]!,
    seed: seed as number,
    setting: JSON.stringify(setting),
    epochs,
    metrics: Object.fromEntries(COMPARED_METRICS.map((m) => [m, last[m] ?? null])) as RunResult['metrics'],
  };
}

/** Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** t(0.975, df): the table up to 30, then 1.96 + 2.4 / df (within 0.002 of the exact value). */
export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1)
    throw new Error(`tQuantile975: degrees of freedom must be ≥ 1, got ${df}`);
  return df <= T975.length ? T975[df - 1]! : 1.96 + 2.4 / df;
}

export interface MetricComparison {
  /** pairs where both runs have this metric */
  pairs: number;
  /** means over those pairs of the baseline's and the other's values (0..1), and their spread (sample sd) */
  mean: [number, number];
  sd: [number | null, number | null];
  /** paired differences (other − baseline) in points (×100): mean, sample sd, 95 % interval */
  diffPoints: number;
  diffSdPoints: number | null;
  ci95Points: [number, number] | null;
  verdict: 'within' | 'outside' | 'undecided';
}

export interface RunComparison {
  /** the baseline precision and the one held against it */
  baseline: string;
  other: string;
  tolerancePoints: number;
  /** paired runs: [baseline run, other run] names, by setting and seed */
  pairs: { seed: number; baseline: string; other: string }[];
  /** runs left out, and why */
  unpaired: { name: string; why: string }[];
  metrics: Record<ComparedMetric, MetricComparison | null>;
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const sd = (v: number[]): number | null => {
  if (v.length < 2) return null;
  const m = mean(v);
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
};

/**
 * Pair the runs by setting and seed and compare `other` against `baseline` (default: f32 against the
 * other precision present). Throws when the runs do not hold exactly the two precisions compared.
 */
export function compareRuns(
  runs: RunResult[],
  o: { tolerancePoints?: number; baseline?: string } = {},
): RunComparison {
  const tolerancePoints = o.tolerancePoints ?? 0.5;
  const precisions = [...new Set(runs.map((r) => r.precision))].sort();
  const baseline = o.baseline ?? (precisions.includes('f32') ? 'f32' : precisions[0]);
  const others = precisions.filter((p) => p !== baseline);
  if (!baseline || !precisions.includes(baseline) || others.length !== 1)
    throw new Error(
      `compare needs finished runs in exactly two precisions, the baseline ${baseline ?? 'f32'} and one other; got ${precisions.length ? precisions.join(', ') : 'none'}`,
    );
  const other = others[0]!;
  const byKey = new Map<string, { baseline: RunResult[]; other: RunResult[] }>();
  for (const r of runs) {
    const key = `${r.setting}|${r.seed}`;
    const slot = byKey.get(key) ?? { baseline: [], other: [] };
    (r.precision === baseline ? slot.baseline : slot.other).push(r);
    byKey.set(key, slot);
  }
  const pairs: [RunResult, RunResult][] = [];
  const unpaired: { name: string; why: string }[] = [];
  for (const slot of byKey.values()) {
    if (slot.baseline.length === 1 && slot.other.length === 1)
      pairs.push([slot.baseline[0]!, slot.other[0]!]);
    else
      for (const r of [...slot.baseline, ...slot.other])
        unpaired.push({
          name: r.name,
          why:
            slot.baseline.length > 1 || slot.other.length > 1
              ? `more than one ${r.precision} run with seed ${r.seed} and this configuration`
              : `no ${r.precision === baseline ? other : baseline} run with seed ${r.seed} and the same configuration`,
        });
  }
  pairs.sort((a, b) => a[0].seed - b[0].seed);
  const metrics = Object.fromEntries(
    COMPARED_METRICS.map((m) => {
      const both = pairs.filter(([a, b]) => a.metrics[m] !== null && b.metrics[m] !== null);
      if (both.length === 0) return [m, null];
      const a = both.map(([x]) => x.metrics[m]!);
      const b = both.map(([, y]) => y.metrics[m]!);
      const d = both.map(([x, y]) => 100 * (y.metrics[m]! - x.metrics[m]!));
      const dm = mean(d);
      const ds = sd(d);
      const half = ds === null ? null : tQuantile975(d.length - 1) * (ds / Math.sqrt(d.length));
      const ci: [number, number] | null = half === null ? null : [dm - half, dm + half];
      const verdict: MetricComparison['verdict'] =
        ci === null
          ? 'undecided'
          : ci[0] >= -tolerancePoints && ci[1] <= tolerancePoints
            ? 'within'
            : ci[0] > tolerancePoints || ci[1] < -tolerancePoints
              ? 'outside'
              : 'undecided';
      const c: MetricComparison = {
        pairs: both.length,
        mean: [mean(a), mean(b)],
        sd: [sd(a), sd(b)],
        diffPoints: dm,
        diffSdPoints: ds,
        ci95Points: ci,
        verdict,
      };
      return [m, c];
    }),
  ) as RunComparison['metrics'];
  return {
    baseline,
    other,
    tolerancePoints,
    pairs: pairs.map(([a, b]) => ({ seed: a.seed, baseline: a.name, other: b.name })),
    unpaired,
    metrics,
  };
}

const LABELS: Record<ComparedMetric, string> = {
  imageAuroc: 'image AUROC',
  pixelAuroc: 'pixel AUROC',
  auproOfficial: 'AUPRO, official per-image',
  auproStandard: 'AUPRO, standard MVTec',
};

/** The comparison as a Markdown table (what `rdpp compare` prints). */
export function comparisonTable(c: RunComparison): string {
  const f = (x: number) => x.toFixed(3);
  const p = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`;
  const rows = COMPARED_METRICS.map((m) => {
    const r = c.metrics[m];
    if (!r) return `| ${LABELS[m]} | — | — | — | — | — |`;
    const spread = (s: number | null) => (s === null ? '' : ` ± ${f(s)}`);
    return `| ${LABELS[m]} | ${f(r.mean[0])}${spread(r.sd[0])} | ${f(r.mean[1])}${spread(r.sd[1])} | ${p(r.diffPoints)} | ${
      r.ci95Points ? `[${p(r.ci95Points[0])}, ${p(r.ci95Points[1])}]` : '— (one pair)'
    } | ${r.verdict} |`;
  });
  return [
    `${c.pairs.length} pair(s) of runs (${c.other} against ${c.baseline}, paired by seed); tolerance ±${c.tolerancePoints} points`,
    '',
    `| metric | ${c.baseline} (mean ± sd over seeds) | ${c.other} | ${c.other} − ${c.baseline}, points | 95 % interval | verdict |`,
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}
