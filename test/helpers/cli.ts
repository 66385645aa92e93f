/**
 * Run the rdpp program in this process (`main(argv)`) and capture what it prints, or run the built
 * program (dist/) in a child process, for what only a real process shows: exit codes under a time limit,
 * native output on file descriptor 2.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export async function cli(argv: string[]): Promise<CliResult> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const error = vi.spyOn(console, 'error').mockImplementation(() => {});
  try {
    const code = await main(argv);
    const text = (s: typeof log) => s.mock.calls.map((c) => c.join(' ')).join('\n');
    return { code, out: text(log), err: text(error) };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

/** The built program (`npm run build`; npm test builds first), in a child process with a time limit. */
export function cliProcess(script: 'rdpp.js' | 'train.js', argv: string[], timeoutMs = 60_000) {
  const path = join(process.cwd(), 'dist', script);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` first`);
  const r = spawnSync(process.execPath, [path, ...argv], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

/** sha256 of every file under `dir`, by relative path (for "nothing changed" checks). */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}
