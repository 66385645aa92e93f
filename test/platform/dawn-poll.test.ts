/**
 * How Node waits for the GPU (platform/dawn-poll.ts, the flag DAWN_POLL): on a CPU adapter the engine's
 * waits poll Dawn by timer, not by a setImmediate spin; on a GPU, or with DAWN_POLL=spin, they spin as
 * Dawn does by itself; and the global setImmediate/clearImmediate keep working for everyone else.
 */
import { describe, expect, it } from 'vitest';
import { matmul, runtime, scope, tensor } from '../../src/engine/index.js';
import { dawnPollMode, timerPollCount } from '../../src/platform/dawn-poll.js';
import { gpuAndFlags } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

const flags = gpuAndFlags();

/** Run GPU work that takes a while and wait for it; returns the wait's setImmediate calls per ms. */
async function pollRate(): Promise<{ perMs: number; ms: number }> {
  const rt = runtime();
  const n = 384;
  const a = tensor(randn(n * n, 1), [n, n]);
  await rt.sync();
  scope(() => {
    let x = a;
    for (let i = 0; i < 6; i++) x = matmul(x, a);
  });
  const original = globalThis.setImmediate;
  let calls = 0;
  globalThis.setImmediate = ((cb: (...args: unknown[]) => void, ...args: unknown[]) => {
    calls++;
    return original(cb, ...args);
  }) as typeof setImmediate;
  const t0 = performance.now();
  try {
    await rt.sync();
  } finally {
    globalThis.setImmediate = original;
  }
  const ms = performance.now() - t0;
  a.dispose();
  return { perMs: calls / ms, ms };
}

describe('DAWN_POLL', () => {
  it('auto: timer on a CPU adapter, spin on a GPU; the flag overrides', () => {
    const ctx = runtime().gpu;
    expect(dawnPollMode(ctx)).toBe(ctx.report.isFallbackAdapter ? 'timer' : 'spin');
    const gpuCtx = { report: { ...ctx.report, isFallbackAdapter: false } } as typeof ctx;
    const cpuCtx = { report: { ...ctx.report, isFallbackAdapter: true } } as typeof ctx;
    expect(dawnPollMode(gpuCtx)).toBe('spin');
    expect(dawnPollMode(cpuCtx)).toBe('timer');
    flags.set({ DAWN_POLL: 'spin' });
    expect(dawnPollMode(cpuCtx)).toBe('spin');
    flags.set({ DAWN_POLL: 'timer' });
    expect(dawnPollMode(gpuCtx)).toBe('timer');
  });

  it('timer: a wait polls about once a millisecond instead of spinning', async () => {
    flags.set({ DAWN_POLL: 'timer' });
    const before = timerPollCount();
    const timer = await pollRate();
    flags.set({ DAWN_POLL: 'spin' });
    const spin = await pollRate();
    console.log(
      `setImmediate calls per ms of waiting: timer ${timer.perMs.toFixed(2)} (${timer.ms.toFixed(0)} ms), spin ${spin.perMs.toFixed(1)} (${spin.ms.toFixed(0)} ms)`,
    );
    expect(timerPollCount()).toBeGreaterThan(before);
    expect(timer.perMs).toBeLessThan(2);
    expect(spin.perMs).toBeGreaterThan(5 * Math.max(timer.perMs, 1));
  });

  it('leaves setImmediate and clearImmediate working for everyone, during a wait and outside one', async () => {
    flags.set({ DAWN_POLL: 'timer' });
    const ctx = runtime().gpu;
    let release: () => void = () => {};
    const waiting = ctx.guard(
      new Promise<void>((r) => {
        release = r;
      }),
    );
    const ran: string[] = [];
    const cancelled = setImmediate(() => ran.push('cancelled'));
    clearImmediate(cancelled);
    await new Promise<void>((r) => setImmediate(() => r()));
    await new Promise<void>((r) =>
      setImmediate((v: string) => {
        ran.push(v);
        r();
      }, 'during'),
    );
    release();
    await waiting;
    const outside = setImmediate(() => ran.push('cancelled too'));
    expect(outside.constructor.name).toBe('Immediate');
    clearImmediate(outside);
    await new Promise<void>((r) => setImmediate(() => r()));
    expect(ran).toEqual(['during']);
  });
});
