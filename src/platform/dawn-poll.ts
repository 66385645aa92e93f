/**
 * How Node waits for the GPU (the flag DAWN_POLL).
 *
 * Dawn's Node bindings (the `webgpu` package) deliver a promise's result — a read's mapAsync, a sync's
 * onSubmittedWorkDone — by polling: while one is pending they call the global `setImmediate` with a fresh
 * callback that processes Dawn's events and queues the next poll. That is ~120,000 polls a second: a core
 * kept busy, and the garbage of every poll collected in 10–40 ms pauses. On a GPU the waits are short and
 * the host has cores to spare, so the spin buys the least latency. On a CPU adapter (lavapipe,
 * SwiftShader) the spinning core is one the kernels run on: a ResNet-18 training step on lavapipe's 2 cores
 * takes ~40 % less time when the engine's waits poll by `setTimeout(0)` instead (at most ~1,000 times a
 * second, up to ~1 ms later).
 *
 * How: Dawn looks `setImmediate` up on the global object at every poll, so while a wait of the engine
 * (GpuContext.guard) is pending in `timer` mode, the global hands its callbacks to `setTimeout`; outside
 * those waits it is Node's own. `clearImmediate` cancels either kind.
 */
import type { GpuContext } from '../engine/device.js';
import { type DawnPoll, flag } from '../engine/flags.js';

/** Engine waits now pending that poll by timer. */
let timerWaits = 0;
/** Polls handed to setTimeout so far (for tests). */
let timerPolls = 0;
let installed = false;

function installTimerPolling(): void {
  if (installed) return;
  installed = true;
  const immediate = globalThis.setImmediate;
  const clear = globalThis.clearImmediate;
  const timers = new WeakSet<object>();
  const setImmediateOrTimer = function (
    this: unknown,
    callback: (...args: unknown[]) => void,
    ...args: unknown[]
  ) {
    if (timerWaits === 0) return immediate(callback, ...args);
    timerPolls++;
    const t = setTimeout(callback, 0, ...args);
    timers.add(t);
    return t;
  };
  // keeps what Node hangs on the function (util.promisify's custom form)
  for (const key of Reflect.ownKeys(immediate))
    if (key !== 'length' && key !== 'name' && key !== 'prototype')
      Object.defineProperty(setImmediateOrTimer, key, Object.getOwnPropertyDescriptor(immediate, key)!);
  globalThis.setImmediate = setImmediateOrTimer as unknown as typeof setImmediate;
  globalThis.clearImmediate = ((handle: unknown) => {
    if (handle && typeof handle === 'object' && timers.has(handle)) clearTimeout(handle as NodeJS.Timeout);
    else clear(handle as NodeJS.Immediate);
  }) as typeof clearImmediate;
}

/** The polling `DAWN_POLL` asks for on this adapter (`auto`: timer on a CPU adapter, spin on a GPU). */
export function dawnPollMode(ctx: GpuContext): Exclude<DawnPoll, 'auto'> {
  const mode = flag('DAWN_POLL');
  if (mode !== 'auto') return mode;
  return ctx.report.isFallbackAdapter ? 'timer' : 'spin';
}

/** Make the engine's waits on `ctx` poll as DAWN_POLL says (read at each wait, so a flag change applies). */
export function applyDawnPolling(ctx: GpuContext): void {
  ctx.onWait = () => {
    if (dawnPollMode(ctx) !== 'timer') return () => {};
    installTimerPolling();
    timerWaits++;
    return () => {
      timerWaits--;
    };
  };
}

/** Polls handed to setTimeout since the process started (tests). */
export function timerPollCount(): number {
  return timerPolls;
}
