/**
 * Stopping a training run loses nothing that was trained (`rdpp train`, src/cli/train-run.ts): the first
 * SIGTERM (Ctrl-C's SIGINT alike) finishes the epoch, writes its checkpoints — even when `--save-every`
 * would not have written them yet — logs a 'stopped' event, releases the run folder and exits with
 * 128 + the signal's number; `--resume` continues from there. The built program in a child process (dist/,
 * built by npm test first): only a real process receives signals.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../src/model/checkpoint.js';
import { LOCK_FILE } from '../../src/platform/run-folder.js';
import { sharedPath } from '../helpers/fixtures.js';
import { formulaTeacherDir } from '../helpers/formula-teacher.js';

const { dir, teacherPath } = formulaTeacherDir('rdpp-interrupt-');
const trainJs = join(process.cwd(), 'dist', 'train.js');

/** Tire at 32², batch 2, 4 training images (2 steps an epoch), ResNet-18 formula teacher, no final evaluation. */
const args = (out: string, epochs: number) => [
  trainJs,
  ...['--data', sharedPath('datasets', 'mvtec3d-tire-half'), '--category', 'tire'],
  ...['--teacher', `resnet18=${teacherPath}`, '--image-size', '32', '--batch', '2', '--max-train', '4'],
  ...['--epochs', String(epochs), '--save-every', '60', '--no-eval', '--out', out],
];

function events(out: string): { event: string; epoch?: number; signal?: string }[] {
  const path = join(out, 'train.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('rdpp train stopped by a signal', () => {
  it('finishes the epoch, writes its checkpoints, exits 143, and resumes from there', async () => {
    const out = join(dir, 'run');
    const child = spawn(process.execPath, args(out, 50), { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      err += String(d);
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // the first epoch's end: with --save-every 60 nothing has been written yet
    const t0 = Date.now();
    while (!events(out).some((e) => e.event === 'epoch')) {
      if (Date.now() - t0 > 240_000) throw new Error(`no epoch ended within 240 s:\n${err}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(existsSync(join(out, 'last.safetensors'))).toBe(false);
    child.kill('SIGTERM');
    const code = await exited;
    expect(code, err).toBe(143);
    expect(err).toContain('SIGTERM: stopping after this epoch');
    expect(err).toMatch(/stopped after epoch \d+ of 50 \(SIGTERM\)/);
    const log = events(out);
    const stopped = log.at(-1)!;
    expect(stopped.event).toBe('stopped');
    expect(stopped.signal).toBe('SIGTERM');
    const epoch = stopped.epoch!;
    expect(epoch).toBeGreaterThanOrEqual(1);
    expect(epoch).toBeLessThan(50);
    const last = decodeCheckpoint(new Uint8Array(readFileSync(join(out, 'last.safetensors'))), 'last');
    expect(last.meta.training?.epoch).toBe(epoch);
    expect(existsSync(join(out, 'best.safetensors'))).toBe(true);
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);

    // --resume continues after that epoch
    const r = spawnSync(process.execPath, [...args(out, epoch + 1), '--resume'], {
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`after epoch ${epoch}`);
    const resumed = decodeCheckpoint(new Uint8Array(readFileSync(join(out, 'last.safetensors'))), 'resumed');
    expect(resumed.meta.training?.epoch).toBe(epoch + 1);
  }, 600_000);
});
