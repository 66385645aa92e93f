/**
 * Every case of the golden ops fixture, run through the same runners as `rdpp parity`, on the WebGPU
 * device, within the fixture's own tolerance.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import '../../src/parity/cases/index.js';
import { findRunner, runOpCase } from '../../src/parity/ops.js';
import { opsFixture } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';

const fixture = opsFixture();

beforeAll(async () => {
  await gpu();
});

describe('ops.json parity', () => {
  it('has a runner for every case in the fixture', () => {
    const missing = fixture.cases.filter((c) => !findRunner(c.name)).map((c) => c.name);
    expect(missing).toEqual([]);
  });

  for (const c of fixture.cases) {
    it.runIf(findRunner(c.name))(c.name, async () => {
      const r = await runOpCase(c);
      expect(r.problem).toBeUndefined();
      for (const e of r.errors) expect(e.error, `${c.name}.${e.name}`).toBeLessThanOrEqual(r.tolerance);
      expect(r.pass).toBe(true);
    });
  }
});
