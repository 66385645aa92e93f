/**
 * Checkpoints into models, the same in Node and in the browser: this project's safetensors (checked
 * against the teacher in its configuration) and official RD++ `.pth` `{proj, decoder, bn}` files, from
 * bytes; and a model's student weights back into checkpoint bytes. No file system and no DOM here.
 */
import { type Decision, parseDecision } from '../eval/threshold.js';
import {
  type CheckpointMeta,
  encodeCheckpoint,
  isStudentTensor,
  loadStudent,
  studentTensors,
} from '../model/checkpoint.js';
import { Rng } from '../model/init.js';
import { Rdpp } from '../model/rdpp.js';
import type { HostArray } from '../model/state.js';
import { type Teacher, type TorchTeacherKind, TorchvisionTeacher } from '../model/teacher/torchvision.js';
import type { TeacherChoice, TrainConfig } from '../train/config.js';
import { TEACHER_LABEL } from './teacher.js';
import { appConfig } from './train-setup.js';
import { checkpointMeta, readWeightFile } from './weight-file.js';

/** The student weights of `model` as a checkpoint (no optimizer state), with the app's configuration. */
export async function studentCheckpoint(
  model: Rdpp,
  cfg: TrainConfig,
  extra: Pick<CheckpointMeta, 'training' | 'decision'> = {},
): Promise<Uint8Array> {
  return encodeCheckpoint(await studentTensors(model), {
    config: { ...cfg, teacherPath: undefined },
    ...extra,
  });
}

/** Which RD++ variant (student shapes) a set of student tensors belongs to, or null if neither fits. */
function studentVariant(tensors: Map<string, HostArray>): TorchTeacherKind | null {
  for (const kind of ['wide_resnet50_2', 'resnet18'] as const) {
    const m = new Rdpp(new TorchvisionTeacher(kind)); // declarations only: no GPU memory
    const shapes = new Map<string, string>();
    for (const st of m.studentStates())
      for (const d of st.decls) shapes.set(st.prefix + d.name, d.shape.join());
    let fits = true;
    for (const [k, v] of tensors)
      if (isStudentTensor(k) && !k.endsWith('num_batches_tracked') && shapes.get(k) !== v.shape.join()) {
        fits = false;
        break;
      }
    if (fits) return kind;
  }
  return null;
}

export interface LoadedCheckpoint {
  model: Rdpp;
  imageSize: number;
  decision: Decision | null;
  /** an official RD++ checkpoint (no configuration), converted */
  official: boolean;
  /** student tensors taken from the file / declared by the model */
  imported: number;
  total: number;
  /** one line for people: what was loaded, and any caveat */
  note: string;
  /** the model as this project's checkpoint bytes (the file itself, or the official one converted) */
  bytes: Uint8Array;
}

export interface CheckpointOptions {
  /** image size for official checkpoints, which store none (the official code trains at 256) */
  imageSize: number;
  /** seed of the official initialisation of tensors an incomplete official checkpoint lacks */
  seed: number;
}

/**
 * A model for inference from checkpoint bytes: this project's safetensors (checked against the teacher
 * in its configuration), or an official RD++ checkpoint — `.pth` `{proj, decoder, bn}` (zip or legacy),
 * or the same names in safetensors without a configuration — imported under the same names like the
 * Node tool does (`loadStudent`; tensors an incomplete file lacks keep their seeded official
 * initialisation, and the note says so).
 */
export async function modelFromCheckpoint(
  teacher: Teacher,
  bytes: Uint8Array,
  source: string,
  opts: CheckpointOptions,
): Promise<LoadedCheckpoint> {
  const { format, tensors, names, metadata } = readWeightFile(bytes, source, 'an RD++ checkpoint', (k) =>
    isStudentTensor(k),
  );
  const student = [...tensors.keys()].filter((k) => !k.endsWith('num_batches_tracked'));
  if (student.length === 0) {
    if (names.includes('conv1.weight') || names.some((k) => k.startsWith('keras.')))
      throw new Error(`${source} holds teacher weights, not an RD++ checkpoint: choose it under “Teacher”`);
    throw new Error(
      `${source} has no RD++ student tensors (proj.…, bn.…, decoder.…): not an RD++ checkpoint`,
    );
  }
  const meta = format === 'safetensors' ? checkpointMeta(metadata, source) : null;
  const official = meta?.config.imageSize === undefined;
  const variant = studentVariant(tensors);
  const teacherKind = teacher.name as TeacherChoice;
  if (!official) {
    const cfg = meta!.config;
    const size = Number(cfg.imageSize);
    if (!Number.isInteger(size) || size <= 0 || size % 32 !== 0)
      throw new Error(`${source}: image size ${String(cfg.imageSize)} is not a multiple of 32`);
    const want = (cfg.teacher ?? 'resnet50-keras') as TeacherChoice;
    if (want !== teacherKind)
      throw new Error(
        `${source} was trained with the ${TEACHER_LABEL[want] ?? `teacher '${String(want)}'`}, but the loaded teacher is the ${TEACHER_LABEL[teacherKind]}: choose that teacher first`,
      );
    const decision = parseDecision(meta!.decision, source);
    const model = new Rdpp(teacher);
    try {
      loadStudent(model, tensors, source);
    } catch (e) {
      for (const st of model.studentStates()) st.dispose();
      throw e;
    }
    const total = model.studentStates().reduce((a, st) => a + st.decls.length, 0);
    return {
      model,
      imageSize: size,
      decision,
      official: false,
      imported: student.length,
      total,
      note: `${source}: ${size}×${size}, ${TEACHER_LABEL[teacherKind]}${decision ? `, calibrated threshold ${decision.threshold.toPrecision(6)}` : ', no calibrated threshold'}`,
      bytes,
    };
  }
  // an official checkpoint: no configuration, the variant from the shapes
  if (variant === null)
    throw new Error(
      `${source}: its student tensors fit neither RD++ variant (WideResNet-50-2 nor ResNet-18 shapes): another model?`,
    );
  if (variant === 'resnet18' && teacherKind !== 'resnet18')
    throw new Error(
      `${source} is an official RD++ checkpoint of the ResNet-18 variant: choose torchvision resnet18 weights as the teacher first (loaded: ${TEACHER_LABEL[teacherKind]})`,
    );
  if (variant === 'wide_resnet50_2' && teacherKind !== 'wide_resnet50_2')
    throw new Error(
      `${source} is an official RD++ checkpoint (WideResNet-50-2 variant): choose the torchvision wide_resnet50_2 weights as the teacher first — the loaded ${TEACHER_LABEL[teacherKind]} ${teacherKind === 'resnet50-keras' ? 'has the same feature shapes but other features, so the scores would be meaningless' : 'does not fit'}`,
    );
  const model = new Rdpp(teacher);
  try {
    const init = new Rng(opts.seed);
    for (const st of model.studentStates()) st.init(init);
    loadStudent(model, tensors, source, { partial: true });
  } catch (e) {
    for (const st of model.studentStates()) st.dispose();
    throw e;
  }
  const total = model.studentStates().reduce((a, st) => a + st.decls.length, 0);
  const optionalAbsent = model
    .studentStates()
    .flatMap((st) => st.decls.map((d) => st.prefix + d.name))
    .filter((k) => /^bn\.(conv4|bn4)\./.test(k) && !tensors.has(k)).length;
  const missing = total - optionalAbsent - student.length;
  const cfg = appConfig({
    imageSize: opts.imageSize,
    batch: 2,
    epochs: 1,
    seed: opts.seed,
    teacher: teacherKind,
  });
  const converted = await studentCheckpoint(model, cfg, {
    training: { importedFrom: source, format: `official RD++ ${format}`, partial: missing > 0 },
  });
  const note =
    `${source}: official RD++ checkpoint (${format}), ${student.length} of ${total} student tensors imported` +
    (missing > 0
      ? `; INCOMPLETE: the other ${missing} keep their seeded initial values (seed ${opts.seed}), so scores are not the original model's`
      : '') +
    `; no image size stored: using ${opts.imageSize}×${opts.imageSize}${opts.imageSize === 256 ? '' : ' (the official code trains at 256)'}`;
  return {
    model,
    imageSize: opts.imageSize,
    decision: null,
    official: true,
    imported: student.length,
    total,
    note,
    bytes: converted,
  };
}
