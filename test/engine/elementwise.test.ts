import { beforeAll, describe, expect, it } from 'vitest';
import { add, leakyRelu, mul, oneMinus, relu, scale, sub } from '../../src/engine/index.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

describe('elementwise ops: gradient checks', () => {
  const x = { data: randn(40, 1), shape: [4, 10] };
  const z = { data: randn(40, 2), shape: [4, 10] };
  const cases: [string, Parameters<typeof gradcheck>[0], (typeof x)[]][] = [
    ['relu', (a) => relu(a), [x]],
    ['leaky_relu', (a) => leakyRelu(a, 0.01), [x]],
    ['scale', (a) => scale(a, -2.5), [x]],
    ['one_minus', (a) => oneMinus(a), [x]],
    ['add', (a, b) => add(a!, b!), [x, z]],
    ['sub', (a, b) => sub(a!, b!), [x, z]],
    ['mul', (a, b) => mul(a!, b!), [x, z]],
    ['mul (same input twice)', (a) => mul(a, a), [x]],
  ];
  for (const [name, f, ins] of cases) {
    it(name, async () => {
      const { errors } = await gradcheck(f, ins, { h: 1e-3 });
      for (const e of errors) expect(e).toBeLessThan(1e-2);
    });
  }
});
