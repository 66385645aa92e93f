/**
 * File-system failures in words a user can act on: what was being done, to which path, why it failed,
 * and what to do. Node's own messages ("ENOSPC: no space left on device, write") name no path, no size and
 * no fix, and arrive deep inside a run; every writer of the CLI goes through here instead.
 *
 * Also `makeDir`, a folder creator without Node's `mkdirSync(…, { recursive: true })`: on file systems that
 * refuse every new entry with ENOENT (/proc, some FUSE mounts) libuv's recursive mkdir retries forever
 * (issue 15: `--out /proc/rdpp-run` hung). Ours creates each missing level once and reports the first refusal.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** An output (folder, checkpoint, report) that cannot be written; the message says why and what to do. */
export class OutputError extends Error {
  override name = 'OutputError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Bytes for people: 1.3 GB, 411 MB, 12 kB (decimal units, as `df -H` and file managers show). */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(n >= 1e10 ? 0 : 1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
  return `${n} bytes`;
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * Why an fs call failed and what to do, for `path` (the file or folder the user named or we derive).
 * `size` is what was being written, when known.
 */
export function explainFsError(e: unknown, path: string, size?: number): string {
  const code = errCode(e);
  const what = size === undefined ? '' : ` (${formatBytes(size)})`;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return `the disk is full${code === 'EDQUOT' ? ' (your quota is used up)' : ''}: ${path}${what} does not fit. Free some space or choose an output folder on another disk`;
    case 'EROFS':
      return `${path} is on a read-only file system: choose an output folder on a writable disk`;
    case 'EACCES':
    case 'EPERM':
      return `no permission to write ${path}: choose an output folder you own, or change the folder's permissions`;
    case 'EEXIST':
      return `${path} already exists and is not a folder: choose another name, or move that file away`;
    case 'ENOTDIR':
      return `a part of ${path} is a file, not a folder: choose another output path`;
    case 'EISDIR':
      return `${path} is a folder: give a file name`;
    case 'ENOENT':
      return `${path} cannot be created there (the file system refuses new entries, as /proc and /sys do, or a parent folder vanished): choose an output folder on a normal disk`;
    case 'ENAMETOOLONG':
      return `the path ${path} is too long for the file system: choose a shorter one`;
    default:
      return `${path}: ${(e as Error)?.message ?? String(e)}`;
  }
}

/** Wrap an fs failure in an OutputError naming the action (e.g. 'cannot write the checkpoint'). */
export function outputError(e: unknown, action: string, path: string, size?: number): OutputError {
  if (e instanceof OutputError) return e;
  return new OutputError(`${action}: ${explainFsError(e, path, size)}`, errCode(e));
}

function statOrNull(p: string): ReturnType<typeof statSync> | null {
  try {
    return statSync(p);
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') return null;
    throw outputError(e, 'cannot inspect the output path', p);
  }
}

/**
 * Create `dir` and its missing parents, each once (never loops). Returns the folders it created, top
 * first, so a caller that gives up can remove exactly those. Errors are OutputErrors naming the path.
 */
export function makeDir(dir: string): string[] {
  const target = resolve(dir);
  const missing: string[] = [];
  let p = target;
  for (;;) {
    const st = statOrNull(p);
    if (st) {
      if (!st.isDirectory())
        throw new OutputError(
          p === target
            ? `${p} already exists and is a file, not a folder: choose another output folder, or move that file away`
            : `cannot create the folder ${target}: ${p} is a file, not a folder`,
          'ENOTDIR',
        );
      break;
    }
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  const created: string[] = [];
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
      created.push(m);
    } catch (e) {
      if (errCode(e) === 'EEXIST' && statOrNull(m)?.isDirectory()) continue; // made meanwhile by another process
      throw outputError(e, `cannot create the folder ${target}`, m);
    }
  }
  return created;
}
