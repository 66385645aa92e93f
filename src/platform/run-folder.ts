/**
 * Run folders that cannot be clobbered (issue 15). Before a training run writes anything, its `--out`
 * folder is
 * - created without loops (makeDir), or refused with a message that names the path and the fix;
 * - locked: `.rdpp.lock` holds the PID, host, start time and command of the one process allowed to write
 *   there. It is created atomically (hard link of a complete file, so it is never seen half-written); a
 *   lock whose process is gone (same host, PID not running or reused) is stale, removed and said so; a lock
 *   from another host is explained, never broken;
 * - refused when it already holds a run (any of RUN_FILES) unless the caller resumes it, or overwrites it,
 *   which MOVES the earlier run into `previous-<time>/` inside the folder (nothing is ever deleted);
 * - cleaned of temp files left by writers that were killed mid-write (`*.tmp-<pid>-<ms>` of dead PIDs);
 * - checked for writability and for room for what the run will write (the caller knows the sizes).
 * The lock is released on every exit path: release(), process exit, SIGINT/SIGTERM/SIGHUP.
 */
import {
  closeSync,
  linkSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statfsSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { formatBytes, makeDir, OutputError, outputError } from './fs-errors.js';

/** What a run writes at the top of its folder; any of them present means the folder holds a run. */
export const RUN_FILES = [
  'last.safetensors',
  'best.safetensors',
  'best.calibrated.safetensors',
  'train.jsonl',
  'training-curve.svg',
  'report',
] as const;

export const LOCK_FILE = '.rdpp.lock';
/** writeFileAtomic's temp files and the lock's own: `<name>.tmp-<pid>-<ms>` */
const TEMP_RE = /\.tmp-(\d+)-\d+$/;

/** The run folder cannot be used as asked; the message says why and what to do. */
export class RunFolderError extends Error {
  override name = 'RunFolderError';
}

export interface LockInfo {
  pid: number;
  host: string;
  started: string;
  /** Linux: the process's start time in clock ticks (/proc/<pid>/stat), to tell a reused PID apart */
  startTicks?: number;
  command: string;
}

export interface SpaceNeed {
  /** bytes the run may have on disk at its peak (checkpoints, their temp copies while written, reports) */
  bytes: number;
  /** how they add up, for the message */
  detail: string;
  /** files in the folder that the run replaces (their space counts as available when resuming) */
  replaces?: readonly string[];
}

export interface RunFolderOptions {
  resume: boolean;
  /** move an earlier run aside (call moveAside() once the run is sure to start) */
  overwrite: boolean;
  space?: SpaceNeed;
  log?: (line: string) => void;
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

function procStartTicks(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return code(e) === 'EPERM'; // exists, owned by someone else
  }
}

function parseLock(raw: string): LockInfo | null {
  try {
    const v = JSON.parse(raw) as LockInfo;
    return Number.isInteger(v.pid) && typeof v.host === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** Why a lock no longer protects anything, or null when its process may still be running. */
function staleReason(info: LockInfo | null): string | null {
  if (!info) return 'the lock file is not one rdpp wrote';
  if (info.host !== hostname()) return null;
  if (!pidAlive(info.pid)) return `its process ${info.pid} (started ${info.started}) is no longer running`;
  const now = procStartTicks(info.pid);
  if (info.startTicks !== undefined && now !== undefined && now !== info.startTicks)
    return `its process ${info.pid} ended and the PID now belongs to another program`;
  return null;
}

function busyMessage(dir: string, lockPath: string, info: LockInfo): string {
  const who = `process ${info.pid}${info.host === hostname() ? ' on this machine' : ` on ${info.host}`}, started ${info.started}: ${info.command}`;
  if (info.host !== hostname())
    return (
      `${dir} is locked by ${who}. From ${hostname()} it cannot be checked whether that process still runs; ` +
      `if it does not (e.g. that machine restarted), delete ${lockPath} and run again.`
    );
  return (
    `${dir} is in use by another rdpp process (${who}). Two processes in one run folder would mix their ` +
    `checkpoints and logs: wait for it to finish, stop it (kill ${info.pid}), or choose another --out.`
  );
}

/** Remove the lock at `path` only if it still holds `raw` (never a lock another process just took). */
function removeIfUnchanged(path: string, raw: string): boolean {
  const aside = `${path}.stale-${process.pid}-${Date.now()}`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if (code(e) === 'ENOENT') return true;
    throw e;
  }
  const got = readFileSync(aside, 'utf8');
  if (got !== raw) {
    try {
      linkSync(aside, path); // put the fresh lock back
    } catch {}
  }
  rmSync(aside, { force: true });
  return got === raw;
}

/** Create the lock file atomically with `text`; false when it exists. */
function tryCreateLock(path: string, text: string): boolean {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    writeFileSync(tmp, text);
  } catch (e) {
    throw outputError(e, 'cannot write in the run folder', tmp);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if (code(e) === 'EEXIST') return false;
    if (code(e) !== 'EPERM' && code(e) !== 'ENOTSUP' && code(e) !== 'EOPNOTSUPP') throw e;
    // no hard links on this file system: exclusive create (a reader may briefly see it empty)
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (e2) {
      if (code(e2) === 'EEXIST') return false;
      throw e2;
    }
    writeSync(fd, text);
    closeSync(fd);
    return true;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function acquireLock(dir: string, log: (l: string) => void): { path: string; token: string } {
  const path = join(dir, LOCK_FILE);
  const mine: LockInfo = {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: ['rdpp', ...process.argv.slice(2)].join(' '),
  };
  const ticks = procStartTicks(process.pid);
  if (ticks !== undefined) mine.startTicks = ticks;
  const token = `${JSON.stringify(mine)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (tryCreateLock(path, token)) return { path, token };
    let raw: string;
    try {
      raw = readFileSync(path, 'utf8');
    } catch (e) {
      if (code(e) === 'ENOENT') continue; // released meanwhile
      throw outputError(e, 'cannot read the run folder lock', path);
    }
    const info = parseLock(raw);
    const stale = staleReason(info);
    if (stale === null) throw new RunFolderError(busyMessage(dir, path, info!));
    if (removeIfUnchanged(path, raw)) log(`note: removed a stale lock in ${dir}: ${stale}`);
  }
  throw new RunFolderError(`${dir}: could not take the lock ${path}: other processes keep taking it`);
}

/** Temp files of writers that were killed mid-write (their PID no longer runs), up to `depth` levels. */
function leftoverTempFiles(dir: string, depth: number): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    const m = TEMP_RE.exec(n) ?? /\.stale-(\d+)-\d+$/.exec(n);
    if (m) {
      if (Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) out.push(p);
    } else if (depth > 0 && !n.startsWith('previous-')) {
      try {
        if (statSync(p).isDirectory()) out.push(...leftoverTempFiles(p, depth - 1));
      } catch {}
    }
  }
  return out;
}

function checkSpace(dir: string, need: SpaceNeed, reclaim: boolean): void {
  let free: number;
  try {
    const s = statfsSync(dir);
    free = Number(s.bavail) * Number(s.bsize);
  } catch {
    return; // statfs unsupported: the writers' own errors still explain a full disk
  }
  let replaced = 0;
  if (reclaim)
    for (const n of need.replaces ?? []) {
      try {
        replaced += statSync(join(dir, n)).size;
      } catch {}
    }
  const missing = need.bytes - replaced - free;
  if (missing > 0)
    throw new OutputError(
      `not enough space for the run in ${dir}: it needs about ${formatBytes(need.bytes - replaced)} ` +
        `(${need.detail}), the disk has ${formatBytes(free)} free. Free ${formatBytes(missing)} or more, ` +
        'or choose an --out on another disk.',
      'ENOSPC',
    );
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The exit code of a process ended by `sig`, as a shell reports it (128 + the signal's number). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15);
}

export class RunFolder {
  private released = false;
  private readonly onExit = () => this.release();
  /** what the next SIGINT/SIGTERM/SIGHUP does instead of exiting (onceOnSignal), or null */
  private interrupt: ((sig: NodeJS.Signals) => void) | null = null;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    const interrupt = this.interrupt;
    if (interrupt) {
      this.interrupt = null;
      // armed again for the next signal, which exits
      for (const s of SIGNALS)
        if (!process.listeners(s).includes(this.onSignal)) process.once(s, this.onSignal);
      interrupt(sig);
      return;
    }
    this.release();
    process.exit(signalExitCode(sig));
  };

  constructor(
    readonly dir: string,
    private readonly lock: { path: string; token: string },
    /** RUN_FILES found in the folder when it was opened */
    readonly previousRun: readonly string[],
    private readonly created: readonly string[],
    private readonly log: (l: string) => void,
  ) {
    process.once('exit', this.onExit);
    for (const s of SIGNALS) process.once(s, this.onSignal);
  }

  /**
   * The next SIGINT, SIGTERM or SIGHUP calls `handler` instead of ending the process (training stops after
   * the current epoch and saves); the one after ends it as before (the lock released). Returns a function
   * that withdraws the handler.
   */
  onceOnSignal(handler: (sig: NodeJS.Signals) => void): () => void {
    this.interrupt = handler;
    return () => {
      if (this.interrupt === handler) this.interrupt = null;
    };
  }

  /**
   * With --overwrite: move everything of the earlier run into `previous-<time>/` inside the folder
   * (never deleted). Returns that folder, or null when there was no earlier run.
   */
  moveAside(): string | null {
    if (this.previousRun.length === 0) return null;
    const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
    let dest = join(this.dir, `previous-${stamp}`);
    for (let k = 2; statOk(dest); k++) dest = join(this.dir, `previous-${stamp}-${k}`);
    try {
      makeDir(dest);
      for (const n of readdirSync(this.dir))
        if (n !== LOCK_FILE && !n.startsWith('previous-') && !n.startsWith(`${LOCK_FILE}.`))
          renameSync(join(this.dir, n), join(dest, n));
    } catch (e) {
      throw outputError(e, 'cannot move the earlier run aside', dest);
    }
    this.log(
      `--overwrite: moved the earlier run to ${dest} (nothing deleted; remove it when you no longer need it)`,
    );
    return dest;
  }

  /** Drop the lock (and the folders this run created, if it left them empty). Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    process.removeListener('exit', this.onExit);
    for (const s of SIGNALS) process.removeListener(s, this.onSignal);
    try {
      if (readFileSync(this.lock.path, 'utf8') === this.lock.token) unlinkSync(this.lock.path);
    } catch {}
    for (const d of [...this.created].reverse()) {
      try {
        rmdirSync(d); // only succeeds when empty: a run that wrote nothing leaves no trace
      } catch {
        break;
      }
    }
  }
}

function statOk(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Open `out` for a training run: create, lock, refuse or accept an earlier run, clean leftovers, check
 * writability and space. The caller must release() it (process exit and signals also do).
 */
export function openRunFolder(out: string, opts: RunFolderOptions): RunFolder {
  const log = opts.log ?? ((l: string) => console.error(l));
  if (opts.resume && opts.overwrite)
    throw new RunFolderError('--resume and --overwrite contradict each other: choose one');
  const dir = resolve(out);
  const created = makeDir(dir);
  let lock: { path: string; token: string };
  try {
    lock = acquireLock(dir, log);
  } catch (e) {
    for (const d of [...created].reverse()) {
      try {
        rmdirSync(d);
      } catch {}
    }
    throw e;
  }
  const present = RUN_FILES.filter((n) => statOk(join(dir, n)));
  const folder = new RunFolder(dir, lock, present, created, log);
  try {
    if (opts.resume && !statOk(join(dir, 'last.safetensors')))
      throw new RunFolderError(
        `--resume: ${dir} holds no run to continue (no last.safetensors)${present.length ? `; it has ${present.join(', ')}` : ''}. Start without --resume.`,
      );
    if (present.length > 0 && !opts.resume && !opts.overwrite)
      throw new RunFolderError(
        `${dir} already holds a training run (${present.join(', ')}). To continue it: --resume. ` +
          'To keep it and start a new one: choose another --out. To start anew in this folder: --overwrite ' +
          `(moves the earlier run into ${join(dir, 'previous-<time>')}/, deletes nothing).`,
      );
    for (const t of leftoverTempFiles(dir, 2)) {
      rmSync(t, { force: true });
      log(`note: removed ${t}, a temp file left by an interrupted write`);
    }
    if (opts.space) checkSpace(dir, opts.space, opts.resume);
  } catch (e) {
    folder.release();
    throw e;
  }
  return folder;
}
