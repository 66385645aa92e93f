/**
 * The teacher a command uses: `--teacher resnet50-keras | wrn50=<file> | resnet18=<file>` parsed, and the
 * teacher built with its ImageNet weights (npm cache for Keras, a .pth/.safetensors file for torchvision).
 */
import { existsSync, readFileSync } from 'node:fs';
import { loadTorchvisionTeacher } from '../model/checkpoint.js';
import { readWeights } from '../model/import.js';
import { type Teacher, TorchvisionTeacher } from '../model/teacher/torchvision.js';
import { loadKerasTeacher } from '../platform/keras-teacher.js';
import type { TeacherChoice, TrainConfig } from '../train/config.js';
import { UsageError } from './command.js';

/** `--teacher resnet50-keras | wrn50=<file> | resnet18=<file>` */
export function parseTeacher(v: string | undefined): Pick<TrainConfig, 'teacher' | 'teacherPath'> {
  if (!v || v === 'resnet50-keras') return { teacher: 'resnet50-keras' };
  const m = /^(wrn50|wide_resnet50_2|resnet18)=(.+)$/.exec(v);
  if (!m)
    throw new UsageError(
      `--teacher '${v}': expected resnet50-keras, wrn50=<weights .pth|.safetensors> or resnet18=<weights>`,
    );
  const teacher: TeacherChoice = m[1] === 'resnet18' ? 'resnet18' : 'wide_resnet50_2';
  return { teacher, teacherPath: m[2]! };
}

export async function loadTeacher(cfg: TrainConfig, log: (l: string) => void): Promise<Teacher> {
  if (cfg.teacher === 'resnet50-keras') return loadKerasTeacher(log);
  if (!cfg.teacherPath)
    throw new Error(
      `--teacher ${cfg.teacher} needs a weights file: --teacher ${cfg.teacher === 'wide_resnet50_2' ? 'wrn50' : 'resnet18'}=<file.pth|file.safetensors>`,
    );
  const t = new TorchvisionTeacher(cfg.teacher);
  const path = cfg.teacherPath;
  if (!existsSync(path)) throw new Error(`teacher weights not found: ${path}`);
  loadTorchvisionTeacher(t.state, readWeights(new Uint8Array(readFileSync(path)), path), path);
  return t;
}
