/**
 * A trained model for inference from checkpoint bytes (`rdpp test`, `rdpp predict`): the teacher and
 * image size come from the checkpoint's `config` metadata, the teacher is built by the caller's
 * `loadTeacher` (Node reads weight files and the npm cache; a browser has its own), then the student side
 * is loaded. The `decision` metadata, when present, becomes a Decision.
 *
 * An official RD++ checkpoint (`torch.save({'proj': …, 'decoder': …, 'bn': …})`, a .pth with no
 * configuration) loads too: the teacher must then be given (`--teacher wrn50=<file>` or resnet18=<file>,
 * the network it was trained with) and the image size is the official 256 unless given.
 */
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
import type { Teacher } from '../model/teacher/torchvision.js';
import { defaultConfig, type TrainConfig } from '../train/config.js';

export interface LoadedModel {
  model: Rdpp;
  cfg: TrainConfig;
  decision: Decision | null;
  checkpoint: DecodedCheckpoint;
  path: string;
}

/** What a caller that loads a checkpoint may be told about the model beyond the file. */
export interface ModelChoice {
  /** overrides the checkpoint's teacher; required for official .pth checkpoints */
  teacher?: Pick<TrainConfig, 'teacher' | 'teacherPath'>;
  /** official .pth checkpoints only (ours store it): the image side, default 256 */
  imageSize?: number;
}

/** How the platform supplies a teacher, and finds a teacher file named relative to the checkpoint. */
export interface TeacherSupply {
  loadTeacher: (cfg: TrainConfig, log: (l: string) => void) => Promise<Teacher>;
  /** the teacher file to use for a relative `teacherPath` of the checkpoint's config (default: as is) */
  resolveTeacherPath?: (teacherPath: string) => string;
}

/** An official RD++ .pth: its student tensors, or null when the bytes are a safetensors checkpoint. */
export function officialStudent(bytes: Uint8Array, path: string): Map<string, HostArray> | null {
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
 * Load checkpoint bytes and their teacher into an Rdpp for inference (its conv weights packed as the
 * GEMMs read them: Rdpp.packForInference; it cannot be trained or saved). `teacher` overrides the
 * checkpoint's teacher choice / weights path (e.g. the weights moved to another folder). The engine must
 * be initialised.
 */
export async function loadModel(
  bytes: Uint8Array,
  path: string,
  supply: TeacherSupply,
  opts: ModelChoice & { log?: (l: string) => void } = {},
): Promise<LoadedModel> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const official = officialStudent(bytes, path);
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
    const teacher = await supply.loadTeacher(cfg, log);
    const model = new Rdpp(teacher);
    try {
      loadStudent(model, official, path);
      model.packForInference();
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
  const ck = decodeCheckpoint(bytes, path);
  const cfg = checkpointConfig(ck, path);
  if (opts.teacher) {
    cfg.teacher = opts.teacher.teacher;
    if (opts.teacher.teacherPath) cfg.teacherPath = opts.teacher.teacherPath;
    else delete cfg.teacherPath;
  }
  if (cfg.teacherPath && supply.resolveTeacherPath)
    cfg.teacherPath = supply.resolveTeacherPath(cfg.teacherPath);
  const decision = parseDecision(ck.meta.decision, path);
  const teacher = await supply.loadTeacher(cfg, log);
  const model = new Rdpp(teacher);
  try {
    loadStudent(model, ck.tensors, path);
    model.packForInference();
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
