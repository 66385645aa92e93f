import { describe, expect, it } from 'vitest';
import { formulaPhase, formulaTensor, initTensor, Rng } from '../../src/model/init.js';

describe('weight initialisation', () => {
  it("reproduces the fixtures' formula check values (golden README)", () => {
    const w = formulaTensor('encoder.conv1.weight', [64, 3, 7, 7]);
    [-0.13569489, 0.06437224, -0.10390992, 0.19628537].forEach((v, i) => {
      expect(w[i]).toBeCloseTo(v, 8);
    });
    expect(formulaPhase('ab')).toBe((97 + 98 * 2) % 9973);
    const bn = formulaTensor('x.bn1.running_var', [8]);
    for (const v of bn) expect(v).toBeGreaterThanOrEqual(1);
  });

  it('follows the official init rules (Kaiming fan_out, uniform fan_in, constants)', () => {
    const rng = new Rng(3);
    const k = initTensor([64, 32, 3, 3], { kind: 'kaiming_normal_fan_out' }, rng);
    const std = Math.sqrt(k.reduce((a, v) => a + v * v, 0) / k.length);
    expect(std).toBeGreaterThan(0.95 * Math.sqrt(2 / (64 * 9)));
    expect(std).toBeLessThan(1.05 * Math.sqrt(2 / (64 * 9)));
    const u = initTensor([16, 8, 2, 2], { kind: 'uniform_fan_in', fanIn: 32 }, rng);
    for (const v of u) expect(Math.abs(v)).toBeLessThanOrEqual(1 / Math.sqrt(32));
    expect(initTensor([4], { kind: 'const', value: 1 }, rng)).toEqual(new Float32Array([1, 1, 1, 1]));
  });

  it('Rng is seeded, and its state resumes the same sequence', () => {
    const a = new Rng(7);
    a.uniform();
    const b = Rng.fromState(a.state());
    expect([a.uniform(), a.int(0, 100), a.normal()]).toEqual([b.uniform(), b.int(0, 100), b.normal()]);
    expect(new Rng(7).permutation(10).sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
  });
});
