/**
 * Teacher weight files that travel (`rdpp teacher export`), and the ONE place where a weight file meets
 * the teacher it is given for (CLI `--teacher <kind>=<file>` and the browser app).
 *
 * An exported teacher file is a safetensors file holding only the tensors the teacher computes with
 * (Keras ResNet-50: conv1..res4f, 258 tensors, 8,589,184 values; torchvision: stem + layer1..3), under
 * the teacher's own names (src/model/teacher/keras-weights.ts, torchvision's), in declaration order, as
 * F32, or with dtype f16: the conv kernels (99 % of the values) as F16 (float32 rounded to nearest even;
 * widened back to float32 on load) and the 1-D tensors (conv biases, BatchNorm γ, β, mean, var: 76,480
 * values for the Keras ResNet-50) kept F32 — a BatchNorm variance of 83,615 in the Keras stem is beyond
 * f16's range (65,504), and keeping them costs 0.15 MB. Its metadata:
 *   format 'rdpp-teacher/1', teacher (resnet50-keras | wide_resnet50_2 | resnet18), preprocess (caffe |
 *   imagenet) and preprocess_detail (the constants), dtype (f32 | f16), source (npm:<name>@<version> or
 *   file:<name>) and source_sha256 (of the npm tarball or of that file), tensors, parameters, and
 *   converted_from when it was re-exported from another exported file.
 * Platform-neutral: bytes in, bytes out; the caller hashes, reads and writes files.
 */
import { floatToHalfBits, halfBitsToFloat } from '../../engine/io/f16.js';
import { readSafetensors, type TensorToWrite, writeSafetensors } from '../../engine/io/safetensors.js';
import type { TeacherChoice } from '../../train/config.js';
import { CHECKPOINT_FORMAT, isStudentTensor } from '../checkpoint.js';
import { detectWeightFormat, readWeights } from '../import.js';
import { NORMALISATION_TEXT, type Normalisation } from '../preprocess.js';
import { type HostArray, StateError } from '../state.js';
import { KerasResnet50Teacher } from './keras-resnet50.js';
import { type Teacher, TorchvisionTeacher, torchvisionTeacherSubset } from './torchvision.js';

export const TEACHER_FILE_FORMAT = 'rdpp-teacher/1';
export const TEACHER_KINDS: readonly TeacherChoice[] = ['resnet50-keras', 'wide_resnet50_2', 'resnet18'];
export const TEACHER_DTYPES = ['f32', 'f16'] as const;
export type TeacherDtype = (typeof TEACHER_DTYPES)[number];
/** What dtype f16 means in a file (its `dtype_detail`). */
export const F16_DETAIL = 'conv kernels f16 (round to nearest even); 1-D tensors (biases, BatchNorm) f32';

/** How `--teacher` spells each kind (`--teacher wrn50=<file>`). */
export const TEACHER_FLAG: Record<TeacherChoice, string> = {
  'resnet50-keras': 'resnet50-keras',
  wide_resnet50_2: 'wrn50',
  resnet18: 'resnet18',
};

export class TeacherFileError extends Error {
  override name = 'TeacherFileError';
}

/** A teacher of `kind` with its tensors declared but not loaded (no GPU memory yet). */
export function newTeacher(kind: TeacherChoice): Teacher {
  return kind === 'resnet50-keras' ? new KerasResnet50Teacher() : new TorchvisionTeacher(kind);
}

/** What an exported teacher file says about itself. */
export interface TeacherFileMeta {
  teacher: TeacherChoice;
  preprocess: Normalisation;
  dtype: TeacherDtype;
  /** npm:<name>@<version> or file:<name> */
  source: string;
  sourceSha256: string;
  /** file:<name> (sha256 …) of the exported file this one was converted from */
  convertedFrom?: string;
}

/** Where the weights being exported came from. */
export interface TeacherOrigin {
  source: string;
  sha256: string;
  convertedFrom?: string;
}

/**
 * The tensors of `all` that a `kind` teacher uses, in its declaration order, checked strictly (every
 * tensor present with its shape, nothing unexpected; torchvision's layer4, fc and BN counters dropped).
 */
export function teacherTensors(
  kind: TeacherChoice,
  all: Map<string, HostArray>,
  source: string,
): Map<string, HostArray> {
  const t = newTeacher(kind);
  const used = kind === 'resnet50-keras' ? all : torchvisionTeacherSubset(all);
  t.state.validate(used, source, { strict: true });
  return new Map(t.state.decls.map((d) => [d.name, used.get(d.name)!]));
}

/** How far f16 storage moved the values (reported by `rdpp teacher export --dtype f16`). */
export interface HalfStats {
  /** nonzero values that became ±0 */
  flushedToZero: number;
  /** values stored as f16 subnormals (reduced precision) */
  subnormal: number;
  /** the largest |f16 − f32| / |f32| over values that stayed normal */
  maxRelativeError: number;
}

export interface EncodedTeacherFile {
  bytes: Uint8Array;
  tensors: number;
  parameters: number;
  half: HalfStats | null;
}

/**
 * The exported teacher file of `kind` for `tensors` (as `teacherTensors` returns them). With f16, kernels
 * are stored as f16 and 1-D tensors as f32 (see the header); a kernel value beyond f16's range (±65504) is
 * refused, naming the tensor, instead of being stored as Infinity.
 */
export function encodeTeacherFile(
  kind: TeacherChoice,
  tensors: Map<string, HostArray>,
  opts: { dtype: TeacherDtype; origin: TeacherOrigin },
): EncodedTeacherFile {
  const half: HalfStats | null =
    opts.dtype === 'f16' ? { flushedToZero: 0, subnormal: 0, maxRelativeError: 0 } : null;
  const out = new Map<string, TensorToWrite>();
  let parameters = 0;
  for (const [name, t] of tensors) {
    parameters += t.data.length;
    if (!half || t.shape.length < 2) {
      out.set(name, { dtype: 'F32', shape: t.shape, data: t.data });
      continue;
    }
    const h = new Uint16Array(t.data.length);
    for (let i = 0; i < h.length; i++) {
      const v = t.data[i]!;
      const b = floatToHalfBits(v);
      const mag = b & 0x7fff;
      if (mag === 0x7c00 && Number.isFinite(v))
        throw new TeacherFileError(
          `${name}[${i}] = ${v} is beyond the f16 range (±65504): this teacher's kernels cannot be stored as f16; export it with --dtype f32`,
        );
      if (mag === 0 && v !== 0) half.flushedToZero++;
      else if (mag !== 0 && mag < 0x400) half.subnormal++;
      else if (mag !== 0 && mag < 0x7c00) {
        const rel = Math.abs(halfBitsToFloat(b) - v) / Math.abs(v);
        if (rel > half.maxRelativeError) half.maxRelativeError = rel;
      }
      h[i] = b;
    }
    out.set(name, { dtype: 'F16', shape: t.shape, data: h });
  }
  const preprocess = newTeacher(kind).preprocess;
  const metadata: Record<string, string> = {
    format: TEACHER_FILE_FORMAT,
    teacher: kind,
    preprocess,
    preprocess_detail: NORMALISATION_TEXT[preprocess],
    dtype: opts.dtype,
    source: opts.origin.source,
    source_sha256: opts.origin.sha256,
    tensors: String(tensors.size),
    parameters: String(parameters),
  };
  if (half) metadata.dtype_detail = F16_DETAIL;
  if (opts.origin.convertedFrom) metadata.converted_from = opts.origin.convertedFrom;
  return { bytes: writeSafetensors(out, metadata), tensors: tensors.size, parameters, half };
}

/** The metadata of an exported teacher file, checked; null when the file is not one. */
export function teacherFileMeta(metadata: Record<string, string>, source: string): TeacherFileMeta | null {
  if (metadata.format !== TEACHER_FILE_FORMAT) return null;
  const kind = metadata.teacher as TeacherChoice;
  const bad = (what: string) =>
    new TeacherFileError(
      `${source}: ${what} in its ${TEACHER_FILE_FORMAT} metadata; the file was altered or written by another tool — export it again with \`rdpp teacher export\``,
    );
  if (!TEACHER_KINDS.includes(kind)) throw bad(`unknown teacher '${metadata.teacher}'`);
  const dtype = metadata.dtype as TeacherDtype;
  if (!TEACHER_DTYPES.includes(dtype)) throw bad(`unknown dtype '${metadata.dtype}'`);
  const preprocess = newTeacher(kind).preprocess;
  if (metadata.preprocess !== preprocess)
    throw bad(`preprocess '${metadata.preprocess}' for a ${kind} teacher (which takes '${preprocess}')`);
  const meta: TeacherFileMeta = {
    teacher: kind,
    preprocess,
    dtype,
    source: metadata.source ?? '(unknown)',
    sourceSha256: metadata.source_sha256 ?? '',
  };
  if (metadata.converted_from) meta.convertedFrom = metadata.converted_from;
  return meta;
}

/** The kind a state_dict without our metadata looks like, from its names (null: none of ours). */
function guessKind(all: Map<string, HostArray>): TeacherChoice | null {
  if (all.has('bn_conv1.gamma') || all.has('res2a_branch2a.weight')) return 'resnet50-keras';
  if (all.has('layer1.0.conv3.weight')) return 'wide_resnet50_2';
  if (all.has('layer1.0.conv1.weight')) return 'resnet18';
  return null;
}

const KIND_NAME: Record<TeacherChoice, string> = {
  'resnet50-keras': 'Keras ResNet-50',
  wide_resnet50_2: 'torchvision WideResNet-50-2',
  resnet18: 'torchvision ResNet-18',
};

export interface TeacherWeights {
  /** the teacher's tensors as float32, in declaration order */
  tensors: Map<string, HostArray>;
  /** the exported-file metadata, or null for a plain state_dict */
  meta: TeacherFileMeta | null;
}

/**
 * Check that a weight file's tensors (and safetensors metadata) are weights for the teacher `kind` the
 * user named, and return exactly the tensors it uses. Refused with the reason and the right option: an
 * RD++ checkpoint, an exported file of another teacher, a state_dict of another architecture, missing or
 * misshapen tensors.
 */
export function teacherWeights(
  kind: TeacherChoice,
  all: Map<string, HostArray>,
  metadata: Record<string, string>,
  source: string,
): TeacherWeights {
  const asTeacher = (k: TeacherChoice) => `--teacher ${TEACHER_FLAG[k]}=${source}`;
  if (
    metadata.format === CHECKPOINT_FORMAT ||
    ([...all.keys()].some(isStudentTensor) && !all.has('conv1.weight'))
  )
    throw new TeacherFileError(
      `${source} is an RD++ checkpoint (student weights proj./bn./decoder.), not teacher weights: give it as --checkpoint; --teacher takes an ImageNet teacher (resnet50-keras, or a file from \`rdpp teacher export\`, or torchvision weights)`,
    );
  const meta = teacherFileMeta(metadata, source);
  const found = meta?.teacher ?? guessKind(all);
  if (found && found !== kind)
    throw new TeacherFileError(
      `${source} holds ${meta ? `an exported ${KIND_NAME[found]} teacher (rdpp teacher export)` : `${KIND_NAME[found]} weights`}, not ${KIND_NAME[kind]} weights: pass it as ${asTeacher(found)}`,
    );
  try {
    return { tensors: teacherTensors(kind, all, source), meta };
  } catch (e) {
    if (!(e instanceof StateError)) throw e;
    throw new TeacherFileError(`${source} is not a complete ${KIND_NAME[kind]} teacher: ${e.message}`);
  }
}

/** `teacherWeights` from the bytes of a .safetensors or .pth file (detected from its content). */
export function readTeacherWeights(kind: TeacherChoice, bytes: Uint8Array, source: string): TeacherWeights {
  const metadata =
    detectWeightFormat(bytes, source) === 'safetensors' ? readSafetensors(bytes, source).metadata : {};
  return teacherWeights(kind, readWeights(bytes, source), metadata, source);
}

/** A `kind` teacher on the GPU with `tensors` (from `teacherTensors` / `teacherWeights`). */
export function teacherFromTensors(
  kind: TeacherChoice,
  tensors: Map<string, HostArray>,
  source: string,
): Teacher {
  const t = newTeacher(kind);
  try {
    t.state.load(tensors, source, { strict: true });
  } catch (e) {
    t.state.dispose();
    throw e;
  }
  return t;
}

/** One line for people: what an exported teacher file holds. */
export function describeTeacherFile(meta: TeacherFileMeta): string {
  const sha = meta.sourceSha256 ? ` sha256 ${meta.sourceSha256.slice(0, 12)}…` : '';
  return `exported ${KIND_NAME[meta.teacher]} teacher (${meta.dtype}${meta.dtype === 'f16' ? ', widened to f32' : ''}; ${meta.preprocess} preprocessing; from ${meta.source}${sha})`;
}
