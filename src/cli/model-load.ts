/**
 * Load a trained checkpoint for inference (shared by `rdpp predict` and `rdpp test`): read the
 * safetensors file, take the teacher and image size from its `config` metadata, load the teacher
 * weights (a relative teacherPath that does not exist from the working folder is also looked up beside
 * the checkpoint), build the Rdpp and load the student side. The `decision` metadata, when present,
 * becomes a Decision.
 *
 * An official RD++ checkpoint (`torch.save({'proj': …, 'decoder': …, 'bn': …})`, a .pth with no
 * configuration) loads too: the teacher must then be given (`--teacher wrn50=<file>` or resnet18=<file>,
 * the network it was trained with) and the image size is the official 256 unless given.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { type Decision, parseDecision } from '../eval/threshold.js';
import {
  type DecodedCheckpoint,
  decodeCheckpoint,
  isStudentTensor,
  loadStudent,
} from '../model/checkpoint.js';
import { detectWeightFormat, readWeights } from '../model/import.js';
import { Rdpp } from '../model/rdpp.js';
import type { HostArray } from '../model/state.js';
import { defaultConfig, type TrainConfig } from '../train/config.js';
import { type OptionSpec, UsageError } from './command.js';
import { loadTeacher, parseTeacher } from './teacher.js';

export interface LoadedModel {
  model: Rdpp;
  cfg: TrainConfig;
  decision: Decision | null;
  checkpoint: DecodedCheckpoint;
  path: string;
}

/** What a command that loads a checkpoint may be told about the model beyond the file. */
export interface ModelChoice {
  /** overrides the checkpoint's teacher; required for official .pth checkpoints */
  teacher?: Pick<TrainConfig, 'teacher' | 'teacherPath'>;
  /** official .pth checkpoints only (ours store it): the image side, default 256 */
  imageSize?: number;
}

/** The command-line options behind ModelChoice (`rdpp test`, `rdpp predict`). */
export const MODEL_OPTIONS: Record<string, OptionSpec> = {
  teacher: {
    type: 'string',
    help: "override the checkpoint's teacher (resnet50-keras, resnet50-keras=<exported file> offline, wrn50=<file>, resnet18=<file>); required for official .pth checkpoints",
  },
  'image-size': {
    type: 'string',
    help: 'official RD++ .pth checkpoints only: the image side they were trained at (default 256)',
  },
};

export function parseModelOptions(values: Record<string, unknown>): ModelChoice {
  const out: ModelChoice = {};
  if (values.teacher !== undefined) out.teacher = parseTeacher(String(values.teacher));
  if (values['image-size'] !== undefined) {
    const n = Number(values['image-size']);
    if (!Number.isInteger(n) || n <= 0 || n % 32 !== 0)
      throw new UsageError(`--image-size must be a positive multiple of 32, got '${values['image-size']}'`);
    out.imageSize = n;
  }
  return out;
}

/** Read and decode a checkpoint file, with a clear error when it is missing. */
export function readCheckpoint(path: string): DecodedCheckpoint {
  if (!existsSync(path)) throw new Error(`checkpoint not found: ${path}`);
  return decodeCheckpoint(new Uint8Array(readFileSync(path)), path);
}

/** An official RD++ .pth: its student tensors, or null when the file is a safetensors checkpoint. */
function readOfficial(path: string): Map<string, HostArray> | null {
  if (!existsSync(path)) throw new Error(`checkpoint not found: ${path}`);
  const bytes = new Uint8Array(readFileSync(path));
  if (detectWeightFormat(bytes, path) === 'safetensors') return null;
  const all = readWeights(bytes, path);
  const student = new Map([...all].filter(([k]) => isStudentTensor(k)));
  if (student.size === 0)
    throw new Error(
      `${path} has no RD++ student tensors (proj.…, bn.…, decoder.…): not an RD++ checkpoint` +
        (all.has('conv1.weight') ? ' (it looks like teacher weights: pass those with --teacher)' : ''),
    );
  return student;
}

/** The training configuration stored in a checkpoint, checked for what inference needs. */
export function checkpointConfig(ck: DecodedCheckpoint, path: string): TrainConfig {
  const c = ck.meta.config as Partial<TrainConfig>;
  const cfg: TrainConfig = { ...defaultConfig(), ...c };
  if (!['resnet50-keras', 'wide_resnet50_2', 'resnet18'].includes(cfg.teacher))
    throw new Error(`${path}: unknown teacher '${String(cfg.teacher)}' in the checkpoint config`);
  if (!Number.isInteger(cfg.imageSize) || cfg.imageSize <= 0 || cfg.imageSize % 32 !== 0)
    throw new Error(
      `${path}: image size ${String(cfg.imageSize)} in the checkpoint config is not a multiple of 32`,
    );
  if (c.imageSize === undefined)
    throw new Error(`${path}: the checkpoint config has no imageSize (not an rdpp-webgpu checkpoint?)`);
  return cfg;
}

/**
 * Load a checkpoint and its teacher into an Rdpp. `teacher` overrides the checkpoint's teacher choice /
 * weights path (e.g. the weights moved to another folder). The engine must be initialised.
 */
export async function loadModel(
  path: string,
  opts: ModelChoice & { log?: (l: string) => void } = {},
): Promise<LoadedModel> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const official = readOfficial(path);
  if (official) {
    const t = opts.teacher;
    if (!t || t.teacher === 'resnet50-keras' || !t.teacherPath)
      throw new Error(
        `${path} is an official RD++ checkpoint (.pth, no configuration inside): give the teacher it was ` +
          'trained with, --teacher wrn50=<wide_resnet50_2 weights> (the paper) or resnet18=<resnet18 weights>',
      );
    const imageSize = opts.imageSize ?? 256;
    const cfg: TrainConfig = {
      ...defaultConfig(),
      teacher: t.teacher,
      teacherPath: t.teacherPath,
      imageSize,
    };
    const teacher = await loadTeacher(cfg, log);
    const model = new Rdpp(teacher);
    try {
      loadStudent(model, official, path);
    } catch (e) {
      model.dispose();
      throw e;
    }
    log(`${path}: official RD++ checkpoint, teacher ${t.teacher}, image size ${imageSize}`);
    return {
      model,
      cfg,
      decision: null,
      checkpoint: { tensors: official, meta: { config: { ...cfg } } },
      path,
    };
  }
  const ck = readCheckpoint(path);
  const cfg = checkpointConfig(ck, path);
  if (opts.teacher) {
    cfg.teacher = opts.teacher.teacher;
    if (opts.teacher.teacherPath) cfg.teacherPath = opts.teacher.teacherPath;
    else delete cfg.teacherPath;
  }
  if (cfg.teacherPath && !isAbsolute(cfg.teacherPath) && !existsSync(cfg.teacherPath)) {
    const beside = join(dirname(resolve(path)), cfg.teacherPath);
    if (existsSync(beside)) cfg.teacherPath = beside;
  }
  const decision = parseDecision(ck.meta.decision, path);
  const teacher = await loadTeacher(cfg, log);
  const model = new Rdpp(teacher);
  try {
    loadStudent(model, ck.tensors, path);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, cfg, decision, checkpoint: ck, path };
}

/** `<dir>/<stem>.calibrated.safetensors` for `<dir>/<stem>.safetensors` (any other extension kept in the stem). */
export function calibratedPath(path: string): string {
  const stem = path.endsWith('.safetensors') ? path.slice(0, -'.safetensors'.length) : path;
  return `${stem}.calibrated.safetensors`;
}
