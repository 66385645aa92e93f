/**
 * A small end-to-end computation through the real engine (upload, elementwise kernels, autograd,
 * readback). Node and the browser run exactly this code; the tests compare both with a CPU reference.
 */
import { backward } from './autograd.js';
import { add, leakyRelu, mul } from './ops/elementwise.js';
import { scope, tensor } from './tensor.js';

export const SELFTEST_N = 1000;

export function selftestInputs(n = SELFTEST_N): { a: Float32Array; b: Float32Array; g: Float32Array } {
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = Math.fround(Math.sin(i * 0.37));
    b[i] = Math.fround(Math.cos(i * 0.11) - 0.2);
    g[i] = Math.fround(((i % 7) - 3) / 3);
  }
  return { a, b, g };
}

/** y = leakyRelu(a + a*b); returns y and dL/da for L = sum(g * y). */
export async function runSelftest(n = SELFTEST_N): Promise<{ y: Float32Array; da: Float32Array }> {
  const { a, b, g } = selftestInputs(n);
  const ta = tensor(a, [n]);
  ta.requiresGrad = true;
  const y = scope(() => {
    const tb = tensor(b, [n]);
    const out = leakyRelu(add(ta, mul(ta, tb)), 0.01);
    backward(out, tensor(g, [n]));
    return out;
  });
  const res = { y: await y.read(), da: await ta.grad!.read() };
  y.dispose();
  ta.grad!.dispose();
  ta.dispose();
  return res;
}

/** The same computation on the CPU in float64, for checking. */
export function selftestReference(n = SELFTEST_N): { y: Float64Array; da: Float64Array } {
  const { a, b, g } = selftestInputs(n);
  const y = new Float64Array(n);
  const da = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = a[i]! + a[i]! * b[i]!;
    y[i] = s > 0 ? s : 0.01 * s;
    da[i] = (s > 0 ? 1 : 0.01) * g[i]! * (1 + b[i]!);
  }
  return { y, da };
}
