/**
 * Output paths that cannot destroy their own input (issue 15: `rdpp export --checkpoint X.safetensors
 * --out X.safetensors` replaced a training checkpoint with a .pth under the old name). Every writer of the
 * CLI checks its output here first: the extension it writes, that it is not one of its inputs (same path,
 * symlink or hard link), and that it is not an existing folder.
 */
import { statSync } from 'node:fs';
import { extname, relative, resolve, sep } from 'node:path';
import { UsageError } from './command.js';

function identity(p: string): string | null {
  try {
    const s = statSync(p);
    return `${s.dev}:${s.ino}`;
  } catch {
    return null;
  }
}

/** True when `a` and `b` name the same file (same path, or the same inode through a link). */
export function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  const x = identity(a);
  return x !== null && x === identity(b);
}

export interface OutputFileCheck {
  /** the option that names the output, for messages ('--out') */
  option: string;
  /** allowed extensions, lower case with the dot */
  extensions: readonly string[];
  /** files the command reads: the output must be none of them */
  inputs: readonly { option: string; path: string }[];
}

/** Refuse an output file that is an input, has the wrong extension, or is a folder. */
export function checkOutputFile(out: string, c: OutputFileCheck): void {
  for (const i of c.inputs)
    if (sameFile(out, i.path))
      throw new UsageError(
        `${c.option} ${out} is the ${i.option} file itself: writing it would destroy the input. Choose another name, e.g. ${suggest(out, c.extensions[0]!)}.`,
      );
  const ext = extname(out).toLowerCase();
  if (!c.extensions.includes(ext))
    throw new UsageError(
      `${c.option} ${out}: the file written is a ${c.extensions.join(' / ')} file, so its name must end in ${c.extensions.join(' or ')} (e.g. ${suggest(out, c.extensions[0]!)}).`,
    );
  try {
    if (statSync(out).isDirectory())
      throw new UsageError(
        `${c.option} ${out} is a folder: give a file name, e.g. ${out.replace(/[/\\]+$/, '')}${sep}model${c.extensions[0]}`,
      );
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
}

function suggest(out: string, ext: string): string {
  const e = extname(out);
  return `${e ? out.slice(0, -e.length) : out}${ext === extname(out).toLowerCase() ? '.exported' : ''}${ext}`;
}

/** True when folder `inner` is `outer` or inside it. */
export function isInside(inner: string, outer: string): boolean {
  const rel = relative(resolve(outer), resolve(inner));
  return rel === '' || (rel.split(sep)[0] !== '..' && !rel.startsWith(sep) && !/^[A-Za-z]:/.test(rel));
}
