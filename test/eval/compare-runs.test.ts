/**
 * `rdpp compare`: runs in two precisions paired by seed, the mean paired difference of each test metric
 * with its 95 % interval (Student's t) and a verdict against the tolerance — computed here by hand on
 * made-up logs; runs that cannot be compared (unfinished, no test evaluation, mixed precisions, no
 * partner) are left out with the reason.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import {
  compareRuns,
  comparisonTable,
  type RunResult,
  runResult,
  tQuantile975,
} from '../../src/eval/compare-runs.js';

interface Fake {
  precision: string;
  seed: number;
  /** image AUROC, pixel AUROC at the last epoch */
  image: number;
  pixel: number;
  epochs?: number;
  lastEval?: number | null;
  imageSize?: number;
}

function log(f: Fake): string {
  const epochs = f.epochs ?? 2;
  const config = { teacher: 'resnet50-keras', imageSize: f.imageSize ?? 64, batch: 16, epochs, seed: f.seed };
  const lines: unknown[] = [
    { event: 'start', config, precision: f.precision, train: 210, resume: false },
    { event: 'step', epoch: 1, globalStep: 1, loss: 1, kd: 1, proj: 0 },
  ];
  const last = f.lastEval === undefined ? epochs : f.lastEval;
  if (last !== null)
    lines.push({
      event: 'test-eval',
      epoch: last,
      imageAuroc: f.image,
      pixelAuroc: f.pixel,
      auproStandard: null,
      auproOfficial: 0.5,
      seconds: 1,
    });
  return `${lines.map((l) => JSON.stringify(l)).join('\n')}\n{"torn`;
}

function run(f: Fake, name = `${f.precision}-${f.seed}`): RunResult {
  const r = runResult(name, log(f));
  if ('skipped' in r) throw new Error(r.skipped);
  return r;
}

describe('runResult', () => {
  it('reads the configuration, the precision and the last epoch’s test metrics', () => {
    const r = run({ precision: 'f16', seed: 7, image: 0.7, pixel: 0.9 });
    expect(r.precision).toBe('f16');
    expect(r.seed).toBe(7);
    expect(r.epochs).toBe(2);
    expect(r.metrics).toEqual({ imageAuroc: 0.7, pixelAuroc: 0.9, auproOfficial: 0.5, auproStandard: null });
    expect(JSON.parse(r.setting)).not.toHaveProperty('seed');
  });

  it('leaves out what it cannot compare, and says why', () => {
    const why = (text: string) => {
      const r = runResult('x', text);
      return 'skipped' in r ? r.skipped : null;
    };
    expect(why(log({ precision: 'f32', seed: 1, image: 0.5, pixel: 0.5, lastEval: 1 }))).toMatch(
      /last test evaluation is at epoch 1 of 2/,
    );
    expect(why(log({ precision: 'f32', seed: 1, image: 0.5, pixel: 0.5, lastEval: null }))).toMatch(
      /--eval-every/,
    );
    expect(why('{"event":"step"}\n')).toMatch(/no start line/);
    const mixed = `${log({ precision: 'f32', seed: 1, image: 0.5, pixel: 0.5 })}\n${JSON.stringify({ event: 'start', config: { seed: 1, epochs: 2 }, precision: 'f16' })}`;
    expect(why(mixed)).toMatch(/different precisions \(f32, f16\)/);
  });
});

describe('compareRuns', () => {
  // image AUROC differences (f16 − f32) of 0.2, 0.1 and 0.3 points; pixel AUROC 2.0, 2.2 and 1.8 points
  const runs = [
    run({ precision: 'f32', seed: 1, image: 0.7, pixel: 0.9 }),
    run({ precision: 'f16', seed: 1, image: 0.702, pixel: 0.92 }),
    run({ precision: 'f32', seed: 2, image: 0.72, pixel: 0.91 }),
    run({ precision: 'f16', seed: 2, image: 0.721, pixel: 0.932 }),
    run({ precision: 'f32', seed: 3, image: 0.68, pixel: 0.89 }),
    run({ precision: 'f16', seed: 3, image: 0.683, pixel: 0.908 }),
    // no partner: another seed, and another image size
    run({ precision: 'f16', seed: 4, image: 0.6, pixel: 0.6 }),
    run({ precision: 'f32', seed: 1, image: 0.6, pixel: 0.6, imageSize: 128 }, 'f32-1-128'),
  ];

  it('pairs by seed and configuration, and gives the mean difference with its t interval', () => {
    const c = compareRuns(runs);
    expect(c.baseline).toBe('f32');
    expect(c.other).toBe('f16');
    expect(c.pairs.map((p) => [p.seed, p.baseline, p.other])).toEqual([
      [1, 'f32-1', 'f16-1'],
      [2, 'f32-2', 'f16-2'],
      [3, 'f32-3', 'f16-3'],
    ]);
    expect(c.unpaired.map((u) => u.name).sort()).toEqual(['f16-4', 'f32-1-128']);
    expect(c.unpaired.find((u) => u.name === 'f16-4')!.why).toMatch(/no f32 run with seed 4/);

    // by hand: mean 0.2, sd 0.1, half-width 4.303 · 0.1 / √3 = 0.2484
    const image = c.metrics.imageAuroc!;
    expect(image.pairs).toBe(3);
    expect(image.diffPoints).toBeCloseTo(0.2, 9);
    expect(image.diffSdPoints).toBeCloseTo(0.1, 9);
    expect(image.ci95Points![0]).toBeCloseTo(0.2 - 0.24843, 4);
    expect(image.ci95Points![1]).toBeCloseTo(0.2 + 0.24843, 4);
    expect(image.verdict).toBe('within');
    expect(image.mean[0]).toBeCloseTo(0.7, 9);
    expect(image.sd[0]).toBeCloseTo(0.02, 9);
    // mean 2.0, sd 0.2: [1.503, 2.497], wholly beyond 0.5
    const pixel = c.metrics.pixelAuroc!;
    expect(pixel.diffPoints).toBeCloseTo(2, 9);
    expect(pixel.verdict).toBe('outside');
    // equal values: a zero-width interval at 0
    expect(c.metrics.auproOfficial!.ci95Points).toEqual([0, 0]);
    expect(c.metrics.auproOfficial!.verdict).toBe('within');
    expect(c.metrics.auproStandard).toBeNull();

    const table = comparisonTable(c);
    expect(table).toContain('3 pair(s) of runs (f16 against f32, paired by seed); tolerance ±0.5 points');
    expect(table).toContain(
      '| image AUROC | 0.700 ± 0.020 | 0.702 ± 0.019 | +0.20 | [−0.05, +0.45] | within |',
    );
    expect(table).toContain('| pixel AUROC |');
    expect(table).toContain('| AUPRO, standard MVTec | — |');
  });

  it('is undecided when the interval straddles the tolerance, or with one pair', () => {
    const wide = compareRuns([
      run({ precision: 'f32', seed: 1, image: 0.7, pixel: 0.9 }),
      run({ precision: 'f16', seed: 1, image: 0.701, pixel: 0.9 }),
      run({ precision: 'f32', seed: 2, image: 0.7, pixel: 0.9 }),
      run({ precision: 'f16', seed: 2, image: 0.715, pixel: 0.9 }),
      run({ precision: 'f32', seed: 3, image: 0.7, pixel: 0.9 }),
      run({ precision: 'f16', seed: 3, image: 0.692, pixel: 0.9 }),
    ]);
    expect(wide.metrics.imageAuroc!.verdict).toBe('undecided');
    const one = compareRuns(runs.slice(0, 2));
    expect(one.metrics.imageAuroc!.ci95Points).toBeNull();
    expect(one.metrics.imageAuroc!.verdict).toBe('undecided');
    expect(comparisonTable(one)).toContain('— (one pair)');
  });

  it('needs exactly two precisions', () => {
    expect(() => compareRuns(runs.filter((r) => r.precision === 'f32'))).toThrow(/exactly two precisions/);
    expect(() => compareRuns([])).toThrow(/got none/);
  });

  it('uses Student’s t quantiles', () => {
    expect(tQuantile975(1)).toBe(12.706);
    expect(tQuantile975(30)).toBe(2.042);
    expect(tQuantile975(60)).toBeCloseTo(2.0, 2);
    expect(() => tQuantile975(0)).toThrow(/≥ 1/);
  });
});

describe('rdpp compare', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdpp-compare-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads run folders, prints the table and writes the JSON', async () => {
    const folders: string[] = [];
    for (const [precision, seed, image] of [
      ['f32', 1, 0.7],
      ['f16', 1, 0.71],
      ['f32', 2, 0.8],
      ['f16', 2, 0.8],
    ] as const) {
      const f = join(dir, `${precision}-${seed}`);
      mkdirSync(f);
      writeFileSync(join(f, 'train.jsonl'), log({ precision, seed, image, pixel: 0.9 }));
      folders.push(f);
    }
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const out: string[] = [];
    const err: string[] = [];
    const logSpy = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
    const errSpy = vi.spyOn(console, 'error').mockImplementation((s: string) => void err.push(s));
    try {
      const json = join(dir, 'compare.json');
      expect(await main(['compare', ...folders, empty, '--out', json])).toBe(0);
      expect(out.join('\n')).toContain('2 pair(s) of runs (f16 against f32, paired by seed)');
      expect(err.join('\n')).toContain(`left out: ${empty}: no train.jsonl`);
      const written = JSON.parse(readFileSync(json, 'utf8'));
      expect(written.metrics.imageAuroc.diffPoints).toBeCloseTo(0.5, 9);
      expect(written.runs).toHaveLength(4);
      expect(await main(['compare', folders[0]!])).toBe(2);
      expect(await main(['compare', ...folders, '--tolerance', '-1'])).toBe(2);
      expect(await main(['compare', folders[0]!, folders[2]!])).toBe(1);
      expect(err.join('\n')).toMatch(/exactly two precisions/);
    } finally {
      logSpy.mockRestore();
      errSpy.mockRestore();
    }
  });
});
