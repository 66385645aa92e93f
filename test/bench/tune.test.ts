/**
 * `rdpp tune --budget`: the shapes are timed largest share of a step first (FLOPs × calls), each with every
 * tile before the next; when the budget is spent no further case starts, and the table holds exactly the
 * GEMMs of the shapes timed with every tile. The clock is stepped by hand, so what runs is deterministic.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { shapeCases } from '../../bench/shapes.js';
import { tuneTiles } from '../../bench/tune.js';
import { gpu } from '../helpers/gpu.js';

beforeAll(async () => {
  await gpu();
});

const OPTIONS = {
  teacher: 'resnet18' as const,
  imageSize: 32,
  trainBatch: 2,
  inferBatches: [1],
  tiles: ['t32x32', 't64x64'],
  iters: 1,
  filter: /\(infer\)/,
};

describe('tune with a time budget', () => {
  it('times the largest shapes first, stops at the budget and tables only shapes timed with every tile', async () => {
    // the clock: 0 while the first two shapes' four cases start, then past the 1 s budget
    let reads = 0;
    const now = () => (reads++ <= 4 ? 0 : 10_000);
    const lines: string[] = [];
    const r = await tuneTiles({ ...OPTIONS, budgetS: 1, now, log: (l) => lines.push(l) });
    expect(r.report.results).toHaveLength(4);
    expect(r.shapes_tuned).toBe(2);
    expect(r.shapes_total).toBeGreaterThan(2);
    expect(lines.join('\n')).toContain(
      `budget of 1 s spent: 2 of ${r.shapes_total} shapes timed with every tile (the largest first)`,
    );
    // the two shapes timed are the two with the largest FLOPs × calls of all
    const all = (await shapeCases(OPTIONS)).filter((c) => OPTIONS.filter.test(`${c.family} ${c.name}`));
    const share = new Map(all.map((c) => [c.name, (c.flops ?? 0) * (c.callsPerStep ?? 1)]));
    const ranked = [...share.entries()].sort((a, b) => b[1] - a[1]).map(([name]) => name);
    expect(new Set(r.report.results.map((x) => x.name))).toEqual(new Set(ranked.slice(0, 2)));
    // every tile of each, and the table: a choice between the two for each of their GEMMs, nothing else
    for (const name of ranked.slice(0, 2))
      expect(r.report.results.filter((x) => x.name === name).map((x) => x.tile)).toEqual(OPTIONS.tiles);
    // what the table gives is said over the shapes timed: both, in the one workload (infer b1)
    expect(r.gains.map((g) => [g.group, g.shapes])).toEqual([['infer b1', 2]]);
    expect(r.choices.length).toBeGreaterThan(0);
    expect(Object.keys(r.table.tiles)).toEqual(r.choices.map((c) => c.key));
    for (const c of r.choices) {
      expect(OPTIONS.tiles).toContain(c.tile);
      expect(Object.keys(c.ms_by_tile).sort()).toEqual([...OPTIONS.tiles].sort());
    }
  });

  it('without a budget every shape is tuned', async () => {
    const r = await tuneTiles({ ...OPTIONS, filter: /fwd +conv3x3 .*\(infer\)/ });
    expect(r.shapes_tuned).toBe(r.shapes_total);
    // one workload (infer b1): a shape is its name (two traced GEMMs of one name, e.g. with and without
    // bias, are one shape)
    expect(new Set(r.report.results.map((x) => x.name)).size).toBe(r.shapes_total);
    for (const t of OPTIONS.tiles) expect(r.report.results.some((x) => x.tile === t)).toBe(true);
  });
});
