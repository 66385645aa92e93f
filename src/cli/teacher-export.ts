/**
 * The teacher export on Node (`rdpp teacher export`, src/cli/commands/teacher.ts parses its options):
 * reads the teacher (npm cache or a torchvision file), keeps only the tensors it uses in f32 or f16,
 * writes one safetensors file atomically (never onto its input) and reports its size and sha256.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { HostArray } from '../model/state.js';
import {
  encodeTeacherFile,
  type HalfStats,
  type TeacherDtype,
  type TeacherOrigin,
  teacherTensors,
} from '../model/teacher/teacher-file.js';
import { KERAS_NPM_ORIGIN, kerasTeacherTensors } from '../platform/keras-teacher.js';
import { writeFileAtomic } from '../platform/node.js';
import type { TeacherChoice, TrainConfig } from '../train/config.js';
import { UsageError } from './command.js';
import { readTeacherFile } from './teacher.js';

export interface TeacherExportOptions {
  teacher: Pick<TrainConfig, 'teacher' | 'teacherPath'>;
  out: string;
  dtype: TeacherDtype;
  log?: (line: string) => void;
}

export interface TeacherExportResult {
  out: string;
  teacher: TeacherChoice;
  dtype: TeacherDtype;
  bytes: number;
  sha256: string;
  tensors: number;
  parameters: number;
  origin: TeacherOrigin;
  half: HalfStats | null;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** True when `a` and `b` name the same file (same path, or the same inode through a link). */
function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  if (!existsSync(a) || !existsSync(b)) return false;
  const sa = statSync(a);
  const sb = statSync(b);
  return sa.dev === sb.dev && sa.ino === sb.ino;
}

export async function runTeacherExport(o: TeacherExportOptions): Promise<TeacherExportResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  if (!/\.safetensors$/i.test(o.out))
    throw new UsageError(
      `--out '${o.out}': the teacher is written as safetensors; give a file name ending in .safetensors`,
    );
  const kind = o.teacher.teacher;
  const input = o.teacher.teacherPath;
  if (input && sameFile(input, o.out))
    throw new UsageError(
      `--out '${o.out}' is the input teacher file itself; write the export to another file (it would be replaced while being read)`,
    );
  let tensors: Map<string, HostArray>;
  let origin: TeacherOrigin;
  if (!input) {
    tensors = teacherTensors(kind, await kerasTeacherTensors(log), KERAS_NPM_ORIGIN.source);
    origin = { ...KERAS_NPM_ORIGIN };
  } else {
    const w = readTeacherFile(o.teacher);
    tensors = w.tensors;
    const fileSha = sha256(w.bytes);
    origin = w.meta
      ? {
          source: w.meta.source,
          sha256: w.meta.sourceSha256,
          convertedFrom: `file:${basename(input)} (${w.meta.dtype}, sha256 ${fileSha})`,
        }
      : { source: `file:${basename(input)}`, sha256: fileSha };
  }
  const enc = encodeTeacherFile(kind, tensors, { dtype: o.dtype, origin });
  writeFileAtomic(o.out, enc.bytes);
  return {
    out: o.out,
    teacher: kind,
    dtype: o.dtype,
    bytes: enc.bytes.byteLength,
    sha256: sha256(enc.bytes),
    tensors: enc.tensors,
    parameters: enc.parameters,
    origin,
    half: enc.half,
  };
}
