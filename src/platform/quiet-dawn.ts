/**
 * Dawn prints two warnings on every adapter request on Mesa's lavapipe (and RADV), straight to file
 * descriptor 2 from native code: "maxDynamic{Uniform,Storage}BuffersPerPipelineLayout artificially reduced
 * from 1000000 to 16 to fit dynamic offset allocation limit." They come from Dawn clamping the *adapter's*
 * limits (dawn/native/Limits.cpp), before any device or limit is requested, so no request can avoid them,
 * and they mean nothing to a user. `requestAdapter` runs them synchronously, so for the length of that one
 * call fd 2 is pointed at a temp file (close 2, reopen: the lowest free descriptor is 2), then restored
 * from a duplicate opened through /proc/self/fd; everything else captured is printed as it was. Linux
 * only, and only where stderr can be reopened: a terminal, a pipe, a file. A socket cannot (Node's
 * child_process gives its children socket pairs), and is left alone: the two lines then still show.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DAWN_LIMIT_WARNING =
  /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?\n?/gm;

/** Remove Dawn's limit warnings from captured stderr text. */
export function dropDawnLimitWarnings(text: string): string {
  return text.replace(DAWN_LIMIT_WARNING, '');
}

/** Run `fn` (synchronous native code) with Dawn's limit warnings filtered out of fd 2. */
export function withoutDawnLimitWarnings<T>(fn: () => T): T {
  if (process.platform !== 'linux') return fn();
  let saved: number;
  try {
    saved = openSync('/proc/self/fd/2', 'a');
  } catch {
    return fn();
  }
  const path = join(tmpdir(), `rdpp-stderr-${process.pid}-${Date.now()}`);
  let captured = false;
  try {
    closeSync(openSync(path, 'w'));
    closeSync(2);
    const fd = openSync(path, 'a');
    captured = fd === 2;
    if (!captured) closeSync(fd);
  } catch {}
  try {
    return fn();
  } finally {
    if (captured) {
      try {
        closeSync(2);
      } catch {}
    }
    const back = openSync(`/proc/self/fd/${saved}`, 'a'); // takes the lowest free number: 2 again
    if (back !== 2) closeSync(back);
    closeSync(saved);
    try {
      const rest = captured ? dropDawnLimitWarnings(readFileSync(path, 'utf8')) : '';
      if (rest) writeSync(2, rest);
    } catch {}
    rmSync(path, { force: true });
  }
}
