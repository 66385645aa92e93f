/**
 * `rdpp teacher export`: write the teacher's weights as one small safetensors file that travels to
 * machines without network (air-gapped inspection PCs, GPU servers): only the tensors the teacher uses,
 * f32 or f16, with its kind, preprocessing and source in the metadata (src/model/teacher/teacher-file.ts).
 * Any command then takes it as `--teacher resnet50-keras=<file>` (or wrn50=/resnet18= for torchvision
 * exports) and fetches nothing. No GPU needed.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { HostArray } from '../../model/state.js';
import {
  encodeTeacherFile,
  type HalfStats,
  TEACHER_DTYPES,
  TEACHER_FLAG,
  type TeacherDtype,
  type TeacherOrigin,
  teacherTensors,
} from '../../model/teacher/teacher-file.js';
import { KERAS_NPM_ORIGIN, kerasTeacherTensors } from '../../platform/keras-teacher.js';
import { writeFileAtomic } from '../../platform/node.js';
import type { TeacherChoice, TrainConfig } from '../../train/config.js';
import { type Command, UsageError } from '../command.js';
import { parseTeacher, readTeacherFile, TEACHER_USAGE } from '../teacher.js';

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

export const teacherCommand: Command = {
  name: 'teacher',
  summary: 'export the teacher weights as one small .safetensors file (f32/f16) for offline machines',
  usage: `export [--teacher ${Object.values(TEACHER_FLAG).join('|')}=<file>] --out <file.safetensors> [--dtype f32|f16]`,
  positionals: true,
  options: {
    teacher: {
      type: 'string',
      default: 'resnet50-keras',
      help: `the teacher to export: ${TEACHER_USAGE}`,
    },
    out: { type: 'string', help: 'the .safetensors file to write (atomically)' },
    dtype: {
      type: 'string',
      default: 'f32',
      help: 'f32 (exact) or f16 (half the size; rounded to nearest even, widened to f32 on load)',
    },
  },
  async run({ values, positionals }) {
    const what = positionals[0];
    if (what !== 'export' || positionals.length > 1)
      throw new UsageError(
        `expected \`rdpp teacher export --out <file.safetensors>\`, got '${positionals.join(' ')}'`,
      );
    const out = values.out as string | undefined;
    if (!out) throw new UsageError('--out <file.safetensors> is required');
    const dtype = String(values.dtype) as TeacherDtype;
    if (!TEACHER_DTYPES.includes(dtype))
      throw new UsageError(`--dtype must be ${TEACHER_DTYPES.join(' or ')}, got '${dtype}'`);
    const r = await runTeacherExport({
      teacher: parseTeacher(values.teacher as string | undefined),
      out,
      dtype,
    });
    console.log(
      `wrote ${r.out}: ${r.teacher} teacher, ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} values as ${r.dtype}, ` +
        `${(r.bytes / 1e6).toFixed(1)} MB (${r.bytes} bytes); source ${r.origin.source}` +
        (r.origin.convertedFrom ? ` via ${r.origin.convertedFrom}` : ''),
    );
    console.log(`sha256 ${r.sha256}`);
    if (r.half)
      console.log(
        `f16: largest relative rounding error ${r.half.maxRelativeError.toExponential(2)}, ` +
          `${r.half.subnormal} values stored as subnormals, ${r.half.flushedToZero} tiny values became 0`,
      );
    console.log(`use it with: --teacher ${TEACHER_FLAG[r.teacher]}=${r.out}`);
    return 0;
  },
};
