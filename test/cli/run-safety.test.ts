/**
 * Issue 15, "nothing a user does loses a trained model": every bad input and interruption case is built
 * here (tiny PNG datasets, fake earlier runs, locks of live, dead and foreign processes, leftover temp
 * files, paths the file system refuses) and must end in a clear message with a non-zero exit code, and no
 * earlier checkpoint or report may change (the run folder is hashed before and after). No GPU: every
 * refusal happens before the GPU is opened. Two cases run the built program in a child process (dist/,
 * built by npm test first): `--out /proc/…` must exit (it used to hang) and the GPU start must be quiet.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPredict } from '../../src/cli/predict-run.js';
import { nodeFileSystem } from '../../src/platform/files.js';
import { explainFsError, OutputError } from '../../src/platform/fs-errors.js';
import { writeFileAtomic } from '../../src/platform/node.js';
import { LOCK_FILE, openRunFolder, RunFolderError } from '../../src/platform/run-folder.js';
import { initImageCodecs } from '../../src/platform/wasm-codecs.js';
import { checkData, DataCheckError, discoverDataset } from '../../src/train/data/index.js';
import { cli, cliProcess, hashTree } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'rdpp-safety-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(initImageCodecs);

function png(w: number, h: number, seed: number, gray = false): Uint8Array {
  const p = new PNG({ width: w, height: h, colorType: gray ? 0 : 2, inputColorType: 2 });
  for (let i = 0; i < w * h; i++) {
    const v = (i * 37 + seed * 101) & 255;
    p.data[i * 4] = v;
    p.data[i * 4 + 1] = gray ? v : 255 - v;
    p.data[i * 4 + 2] = gray ? v : (v * 3) & 255;
    p.data[i * 4 + 3] = 255;
  }
  return new Uint8Array(PNG.sync.write(p, { colorType: gray ? 0 : 2 }));
}

function put(path: string, bytes: Uint8Array | string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, bytes);
}

/** A good MVTec-layout category: 4 train, 2 validation, 2 good + 2 crack test images with masks. */
function dataset(name: string): string {
  const root = join(dir, name);
  const c = join(root, 'part');
  for (let i = 0; i < 4; i++) put(join(c, `train/good/${i}.png`), png(64, 64, i));
  for (let i = 0; i < 2; i++) put(join(c, `validation/good/${i}.png`), png(64, 64, 10 + i));
  for (let i = 0; i < 2; i++) put(join(c, `test/good/${i}.png`), png(64, 64, 20 + i));
  for (let i = 0; i < 2; i++) {
    put(join(c, `test/crack/${i}.png`), png(64, 64, 30 + i));
    put(join(c, `ground_truth/crack/${i}_mask.png`), png(64, 64, 40 + i, true));
  }
  return root;
}

/** An earlier run: checkpoints, log and report with distinct bytes. */
function earlierRun(name: string): string {
  const run = join(dir, name);
  put(join(run, 'best.safetensors'), 'best weights');
  put(join(run, 'last.safetensors'), 'last weights and optimizer');
  put(join(run, 'train.jsonl'), '{"event":"start"}\n');
  put(join(run, 'report/report.html'), '<h1>report</h1>');
  put(join(run, 'report/metrics.json'), '{"imageAuroc":0.9}');
  return run;
}

const train = (data: string, out: string, ...more: string[]) =>
  cli([
    'train',
    '--data',
    data,
    '--category',
    'part',
    '--out',
    out,
    '--image-size',
    '64',
    '--epochs',
    '1',
    ...more,
  ]);

/** A PID that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const c = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => c.on('exit', r));
  return c.pid!;
}

describe('run folders cannot be clobbered', () => {
  it('a folder holding a run is refused without --resume / --overwrite, and nothing in it changes', async () => {
    const data = dataset('d-refuse');
    const run = earlierRun('r-refuse');
    const before = hashTree(run);
    const r = await train(data, run);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `${run} already holds a training run (last.safetensors, best.safetensors, train.jsonl, report)`,
    );
    expect(r.err).toMatch(
      /To continue it: --resume.*choose another --out.*--overwrite \(moves the earlier run into .*previous-<time>/s,
    );
    expect(hashTree(run)).toEqual(before);
    const both = await train(data, run, '--resume', '--overwrite');
    expect(both.code).toBe(2);
    expect(both.err).toContain('--resume and --overwrite contradict each other');
    expect(hashTree(run)).toEqual(before);
  });

  it('a lock of a live process is refused (PID, host, command); a dead one is stale and removed; a foreign host is explained', async () => {
    const data = dataset('d-lock');
    const run = join(dir, 'r-lock');
    mkdirSync(run);
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      const lock = {
        pid: child.pid,
        host: hostname(),
        started: '2026-01-01T00:00:00Z',
        command: 'rdpp train --out r-lock',
      };
      writeFileSync(join(run, LOCK_FILE), JSON.stringify(lock));
      const r = await train(data, run);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`is in use by another rdpp process (process ${child.pid} on this machine`);
      expect(r.err).toContain(`kill ${child.pid}`);
      expect(readFileSync(join(run, LOCK_FILE), 'utf8')).toBe(JSON.stringify(lock)); // untouched
    } finally {
      child.kill('SIGKILL');
    }
    const dead = await deadPid();
    writeFileSync(
      join(run, LOCK_FILE),
      JSON.stringify({ pid: dead, host: hostname(), started: 'x', command: 'y' }),
    );
    const log: string[] = [];
    const folder = openRunFolder(run, { resume: false, overwrite: false, log: (l) => log.push(l) });
    expect(log.join('\n')).toContain(`removed a stale lock in ${run}: its process ${dead}`);
    expect(JSON.parse(readFileSync(join(run, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    // the same folder again while it is held: refused
    expect(() => openRunFolder(run, { resume: false, overwrite: false, log: () => {} })).toThrow(
      RunFolderError,
    );
    folder.release();
    expect(existsSync(join(run, LOCK_FILE))).toBe(false);
    writeFileSync(
      join(run, LOCK_FILE),
      JSON.stringify({ pid: 1, host: 'gpu-7', started: 'x', command: 'y' }),
    );
    expect(() => openRunFolder(run, { resume: false, overwrite: false })).toThrow(
      /locked by process 1 on gpu-7, started x: y\. From .* it cannot be checked whether that process still runs; if it does not .*delete .*\.rdpp\.lock/s,
    );
  });

  it('temp files of writers that were killed mid-write are removed at start; a live writer’s are kept', async () => {
    const run = join(dir, 'r-tmp');
    const dead = await deadPid();
    put(join(run, `last.safetensors.tmp-${dead}-1700000000000`), 'torn');
    put(join(run, `test-best/metrics.json.tmp-${dead}-1`), 'torn');
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      put(join(run, `other.tmp-${child.pid}-1`), 'being written');
      const log: string[] = [];
      const folder = openRunFolder(run, { resume: false, overwrite: false, log: (l) => log.push(l) });
      folder.release();
      expect(readdirSync(run).sort()).toEqual([`other.tmp-${child.pid}-1`, 'test-best']);
      expect(readdirSync(join(run, 'test-best'))).toEqual([]);
      expect(log.join('\n')).toContain(
        `removed ${join(run, `last.safetensors.tmp-${dead}-1700000000000`)}, a temp file left by an interrupted write`,
      );
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('--overwrite moves the earlier run aside only once the run is sure to start', async () => {
    const data = dataset('d-over');
    rmSync(join(data, 'part/test/good/0.png'));
    put(join(data, 'part/test/good/0.png'), new Uint8Array(0)); // a bad file: the run must not start
    const run = earlierRun('r-over');
    const before = hashTree(run);
    const r = await train(data, run, '--overwrite');
    expect(r.code).toBe(1);
    expect(r.err).toContain('1 file(s) cannot be used');
    expect(hashTree(run)).toEqual(before); // nothing moved, nothing changed
    // the move itself (tested without training): everything goes into previous-<time>/, byte for byte
    const folder = openRunFolder(run, { resume: false, overwrite: true, log: () => {} });
    const dest = folder.moveAside()!;
    folder.release();
    expect(dest).toMatch(/previous-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d$/);
    expect(readdirSync(run)).toEqual([dest.slice(run.length + 1)]);
    expect(hashTree(dest)).toEqual(before);
  });

  it('room for the checkpoints is checked before anything is written', () => {
    const run = join(dir, 'r-space/new');
    let err: unknown;
    try {
      openRunFolder(run, { resume: false, overwrite: false, space: { bytes: 1e18, detail: 'checkpoints' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OutputError);
    expect((err as Error).message).toMatch(
      /not enough space for the run in .*new: it needs about 1000000000 GB \(checkpoints\), the disk has .* free\. Free .* or choose an --out on another disk/,
    );
    expect(existsSync(run)).toBe(false); // the folder it created is gone again
  });
});

describe('output paths the file system refuses: clear messages, never a hang', () => {
  it('an existing file, a file as a parent, no permission', async () => {
    const data = dataset('d-paths');
    put(join(dir, 'a-file'), 'x');
    const asOut = await train(data, join(dir, 'a-file'));
    expect(asOut.code).toBe(1);
    expect(asOut.err).toContain(`${join(dir, 'a-file')} already exists and is a file, not a folder`);
    const asParent = await train(data, join(dir, 'a-file/run'));
    expect(asParent.err).toContain(`${join(dir, 'a-file')} is a file, not a folder`);
    // /sys refuses new entries even to root (EPERM)
    const sys = await train(data, '/sys/rdpp-run-test');
    expect(sys.code).toBe(1);
    expect(sys.err).toContain('no permission to write /sys/rdpp-run-test');
    // a run folder inside the dataset would mix outputs with images
    const inside = await train(data, join(data, 'part/run'));
    expect(inside.err).toContain('is inside the dataset');
    expect(existsSync(join(data, 'part/run'))).toBe(false);
  });

  it('--out under /proc ends with a message instead of looping forever (built program)', () => {
    const data = dataset('d-proc');
    const r = cliProcess(
      'train.js',
      ['--data', data, '--category', 'part', '--out', `/proc/rdpp-run-${process.pid}`],
      30_000,
    );
    expect(r.signal).toBeNull(); // not killed by the time limit
    expect(r.code).toBe(1);
    expect(r.err).toContain(`cannot create the folder /proc/rdpp-run-${process.pid}`);
    expect(r.err).toContain('the file system refuses new entries');
  });

  it('full disk, read-only and permission errors are explained with the path and size', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    expect(explainFsError(e('ENOSPC'), '/r/last.safetensors', 1.29e9)).toBe(
      'the disk is full: /r/last.safetensors (1.3 GB) does not fit. Free some space or choose an output folder on another disk',
    );
    expect(explainFsError(e('EROFS'), '/mnt/ro/run')).toContain('/mnt/ro/run is on a read-only file system');
    expect(explainFsError(e('EACCES'), '/root/x')).toContain('no permission to write /root/x');
    // a real failure through writeFileAtomic: the target is a folder
    const target = join(dir, 'is-a-folder');
    mkdirSync(join(target, 'inner'), { recursive: true });
    expect(() => writeFileAtomic(target, 'x')).toThrow(
      /cannot write the file: .*is-a-folder is a folder: give a file name.*earlier file of that name, if any, is unchanged/,
    );
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

describe('writers never overwrite their own input', () => {
  it('export refuses --out = --checkpoint (also through a hard link), a wrong extension and a folder', async () => {
    const ck = join(dir, 'exp/model.safetensors');
    put(ck, 'a training checkpoint');
    const before = hashTree(join(dir, 'exp'));
    const same = await cli(['export', '--checkpoint', ck, '--out', ck]);
    expect(same.code).toBe(2);
    expect(same.err).toContain(
      `--out ${ck} is the --checkpoint file itself: writing it would destroy the input`,
    );
    linkSync(ck, join(dir, 'exp/alias.pth'));
    const linked = await cli(['export', '--checkpoint', ck, '--out', join(dir, 'exp/alias.pth')]);
    expect(linked.err).toContain('is the --checkpoint file itself');
    const ext = await cli(['export', '--checkpoint', ck, '--out', join(dir, 'exp/other.safetensors')]);
    expect(ext.code).toBe(2);
    expect(ext.err).toMatch(/its name must end in \.pth or \.pt \(e\.g\. .*other\.pth\)/);
    mkdirSync(join(dir, 'exp/folder.pth'));
    const folder = await cli(['export', '--checkpoint', ck, '--out', join(dir, 'exp/folder.pth')]);
    expect(folder.err).toContain('is a folder: give a file name');
    rmSync(join(dir, 'exp/alias.pth'));
    rmSync(join(dir, 'exp/folder.pth'), { recursive: true });
    expect(hashTree(join(dir, 'exp'))).toEqual(before);
  });

  it('test refuses a report folder inside the dataset and names unreadable test images, writing nothing', async () => {
    const data = dataset('d-test');
    put(join(data, 'part/test/good/2.gif'), 'GIF89a');
    const ck = join(dir, 'tst/best.safetensors');
    put(ck, 'weights');
    const before = hashTree(join(dir, 'tst'));
    const test = (out: string) =>
      cli(['test', '--data', data, '--category', 'part', '--checkpoint', ck, '--out', out]);
    const inside = await test(join(data, 'part/rep'));
    expect(inside.code).toBe(2);
    expect(inside.err).toContain('is inside the dataset');
    const gif = await test(join(dir, 'tst/rep'));
    expect(gif.code).toBe(1);
    expect(gif.err).toContain(
      `1 of 5 image(s) could not be loaded:\n  ${join(data, 'part/test/good/2.gif')}: GIF images are not supported`,
    );
    expect(hashTree(join(dir, 'tst'))).toEqual(before);
    expect(existsSync(join(data, 'part/rep'))).toBe(false);
  });

  it('predict refuses --out = --input (its overlays would become inputs)', async () => {
    const input = join(dir, 'pred');
    put(join(input, 'a.png'), png(64, 64, 1));
    await expect(
      runPredict({ checkpoint: 'unused', input, out: input, batch: 1, alpha: 0.5, log: () => {} }),
    ).rejects.toThrow(/--out .*pred is the --input folder: the overlays would mix with the images/);
  });
});

describe('every data file is checked before the first step', () => {
  it('bad files of every split come in one list, with the split; nothing is written', async () => {
    const data = dataset('d-bad');
    const c = join(data, 'part');
    put(join(c, 'test/good/0.png'), new Uint8Array(0)); // empty (test split)
    put(join(c, 'train/good/1.png'), png(64, 64, 1).subarray(0, 60)); // truncated (training)
    put(join(c, 'train/good/9.gif'), 'GIF89a'); // unreadable format, named
    put(join(c, 'ground_truth/crack/1_mask.png'), png(32, 32, 7, true)); // mask of the wrong size
    put(join(c, 'test/good/notes.txt'), 'not an image'); // named in a note
    const out = join(dir, 'r-bad');
    const r = await train(data, out);
    expect(r.code).toBe(1);
    expect(r.err).toContain('4 file(s) cannot be used');
    expect(r.err).toContain(`${join(c, 'train/good/9.gif')} (not used): GIF images are not supported`);
    expect(r.err).toMatch(/train\/good\/1\.png \(training|selection\): truncated PNG/);
    expect(r.err).toContain(`${join(c, 'test/good/0.png')} (test): the file is empty`);
    expect(r.err).toContain(
      `${join(c, 'test/crack/1.png')} (test): ${join(c, 'ground_truth/crack/1_mask.png')}: mask is 32×32 but its image`,
    );
    expect(r.err).toContain('Nothing was trained and no output was changed');
    expect(r.err).toContain(`ignored 1 file(s) in ${join(c, 'test/good')} that are not images`);
    expect(r.err).toContain('notes.txt');
    expect(existsSync(out)).toBe(false);
  });

  it('--skip-bad leaves every bad file out and names them; small images are reported', async () => {
    const data = dataset('d-skip');
    const c = join(data, 'part');
    put(join(c, 'train/good/2.png'), new Uint8Array(0));
    put(join(c, 'train/good/5.png'), png(16, 16, 5));
    put(join(c, 'train/good/6.heic'), 'x');
    const fs = nodeFileSystem();
    const ds = discoverDataset(fs, data, { category: 'part' });
    expect(ds.unsupported.map((u) => u.path)).toEqual([join(c, 'train/good/6.heic')]);
    const splits = [
      { name: 'training', samples: ds.train, keep: true },
      { name: 'test', samples: ds.test, keep: false },
    ];
    await expect(checkData(fs, splits, 64, { skipBad: false, unsupported: ds.unsupported })).rejects.toThrow(
      DataCheckError,
    );
    const r = await checkData(fs, splits, 64, { skipBad: true, unsupported: ds.unsupported });
    expect(r.bad.map((b) => b.path)).toEqual([join(c, 'train/good/6.heic'), join(c, 'train/good/2.png')]);
    expect(r.splits[0]!.items.map((s) => s.path.slice(c.length))).toEqual([
      '/train/good/0.png',
      '/train/good/1.png',
      '/train/good/3.png',
      '/train/good/5.png',
    ]);
    expect(r.splits[0]!.samples).toHaveLength(4);
    expect(r.splits[1]!.items).toHaveLength(4);
    expect(r.small).toEqual([{ path: join(c, 'train/good/5.png'), width: 16, height: 16 }]);
  });

  it('a file two kept splits share is read and decoded once (--select-on test: selection = test)', async () => {
    const data = dataset('d-shared');
    const base = nodeFileSystem();
    const reads = new Map<string, number>();
    const fs = {
      ...base,
      readBytes: (p: string) => {
        reads.set(p, (reads.get(p) ?? 0) + 1);
        return base.readBytes(p);
      },
    };
    const ds = discoverDataset(fs, data, { category: 'part' });
    const r = await checkData(
      fs,
      [
        { name: 'training', samples: ds.train, keep: true },
        { name: 'selection', samples: ds.test, keep: true },
        { name: 'test', samples: ds.test, keep: true },
      ],
      64,
      { skipBad: false },
    );
    const [, sel, test] = r.splits;
    expect(test!.samples).toHaveLength(4);
    // the same decoded objects (pixels and masks), not equal copies
    for (const [i, s] of test!.samples.entries()) expect(s).toBe(sel!.samples[i]);
    // every image and mask read once
    expect([...reads.values()].every((n) => n === 1)).toBe(true);
    expect(reads.size).toBe(4 + 4 + 2);
  });

  it('a missing mask points at --no-eval, which needs none', async () => {
    const data = dataset('d-nomask');
    rmSync(join(data, 'part/ground_truth/crack/1_mask.png'));
    const r = await train(data, join(dir, 'r-nomask'));
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'add the masks (rdpp train --no-eval trains without the test set and needs none)',
    );
    expect(existsSync(join(dir, 'r-nomask'))).toBe(false);
  });
});

describe('argument errors name the option and the value', () => {
  it('--image-size -5 and --epochs --out x', async () => {
    const a = await cli(['train', '--data', dir, '--image-size', '-5']);
    expect(a.code).toBe(2);
    expect(a.err).toContain("--image-size must be an integer ≥ 32, got '-5'");
    const b = await cli(['train', '--data', dir, '--epochs', '--out', 'x']);
    expect(b.code).toBe(2);
    expect(b.err).toContain("--epochs needs a value, but it is followed by the option '--out'");
    const c = await cli(['train', '--data', dir, '--epochs']);
    expect(c.err).toContain('--epochs needs a value');
    expect((await cli(['train', '--data', dir, '--seed', '-1'])).err).toContain(
      "--seed must be an integer ≥ 0, got '-1'",
    );
  });
});

describe('quiet GPU start (built program)', () => {
  // stderr as a terminal, a shell pipe or a file shows it; a socket (what Node's spawn gives a child)
  // cannot be reopened, so the program is run behind a real pipe here
  it('rdpp info prints the adapter and none of Dawn’s limit warnings', () => {
    const rdpp = join(process.cwd(), 'dist/rdpp.js');
    expect(existsSync(rdpp)).toBe(true);
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${rdpp}" info 2>&1 | cat`], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^node: /);
    expect(r.stdout).not.toContain('artificially reduced');
  });
});
