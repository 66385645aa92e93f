/**
 * Every case of the golden ops fixture, run through the same runners as `rdpp parity`, on the WebGPU
 * device, within the fixture's own tolerance; and the GEMM cases again under PRECISION=f16, within the
 * f16 tolerance of src/parity/f16.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import '../../src/parity/cases/index.js';
import { setFlags } from '../../src/engine/index.js';
import { F16_OP_TOLERANCE } from '../../src/parity/f16.js';
import { findRunner, runOpCase } from '../../src/parity/ops.js';
import { opsFixture } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';

const fixture = opsFixture();
let hasF16 = false;

beforeAll(async () => {
  hasF16 = (await gpu()).has('shader-f16');
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

describe('ops.json parity under PRECISION=f16 (the GEMM cases)', () => {
  for (const c of fixture.cases.filter((c) => c.name.replace(/_\d+$/, '') in F16_OP_TOLERANCE)) {
    it(c.name, async (ctx) => {
      if (!hasF16) ctx.skip();
      const restore = setFlags({ PRECISION: 'f16' });
      try {
        const r = await runOpCase(c);
        expect(r.problem).toBeUndefined();
        expect(r.pass, `${c.name}: ${r.maxError} > ${r.tolerance}`).toBe(true);
        // f16 really ran: its error is beyond what any float32 GEMM makes here (≤ 2.2e-7 measured)
        expect(r.maxError).toBeGreaterThan(c.tolerance ?? 1e-5);
      } finally {
        restore();
      }
    });
  }
});
