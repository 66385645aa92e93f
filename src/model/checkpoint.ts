/**
 * Checkpoints. The project's own format is safetensors: the student side under the official state_dict
 * names with module prefixes (`proj.…`, `bn.…`, `decoder.…`, exactly the keys of the official RD++
 * `{proj, decoder, bn}` checkpoints), the configuration and training state as JSON strings in the
 * metadata. Files convert both ways with official checkpoints; official `.pth` checkpoints import
 * directly (src/engine/io/pth.ts). Everything here works on bytes (the caller reads/writes files
 * atomically), so the browser app uses the same code.
 */
import {
  readSafetensors,
  type TensorToWrite,
  toFloat32,
  writeSafetensors,
} from '../engine/io/safetensors.js';
import type { Rdpp } from './rdpp.js';
import type { HostArray, NetState } from './state.js';
import { torchvisionTeacherSubset } from './teacher/torchvision.js';

export const CHECKPOINT_FORMAT = 'rdpp-webgpu/1';

/**
 * The official checkpoint's three state_dicts (`torch.save({'proj': …, 'decoder': …, 'bn': …})`); their
 * names prefix the student's tensors in our checkpoints too (`proj.proj_a.…`, `bn.bn_layer.…`).
 */
export const STUDENT_DICTS = ['proj', 'decoder', 'bn'] as const;

/** A student tensor name (projection, decoder or OCBE), as opposed to teacher or optimizer tensors. */
export function isStudentTensor(name: string): boolean {
  return STUDENT_DICTS.some((d) => name.startsWith(`${d}.`));
}

export interface CheckpointMeta {
  /** model and data configuration (teacher, image size, …) */
  config: Record<string, unknown>;
  /** optional training state (epoch, step, RNG, optimizer moments live in tensors `optim.*`) */
  training?: Record<string, unknown>;
  /** optional decision threshold and score statistics (evaluation) */
  decision?: Record<string, unknown>;
}

/** Host copies of a model's student side (proj., bn., decoder.), in state_dict order. */
export async function studentTensors(model: Rdpp): Promise<Map<string, HostArray>> {
  const out = new Map<string, HostArray>();
  for (const st of model.studentStates()) for (const [k, v] of await st.toHost()) out.set(st.prefix + k, v);
  return out;
}

export function encodeCheckpoint(tensors: Map<string, HostArray>, meta: CheckpointMeta): Uint8Array {
  const w = new Map<string, TensorToWrite>();
  for (const [k, v] of tensors) w.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
  const metadata: Record<string, string> = { format: CHECKPOINT_FORMAT, config: JSON.stringify(meta.config) };
  if (meta.training) metadata.training = JSON.stringify(meta.training);
  if (meta.decision) metadata.decision = JSON.stringify(meta.decision);
  return writeSafetensors(w, metadata);
}

/**
 * A checkpoint for inference: the student tensors, the configuration, the decision, and the training
 * summary (epochs, history) without what only resuming needs (optimizer moments, pending gradients, RNG
 * state, Adam step counts). best.safetensors and every calibrated copy are written this way: about a
 * quarter of the resume checkpoint `last.safetensors` (README, "Training on your images").
 */
export function encodeWeightsCheckpoint(tensors: Map<string, HostArray>, meta: CheckpointMeta): Uint8Array {
  const student = new Map([...tensors].filter(([k]) => isStudentTensor(k)));
  const out: CheckpointMeta = { config: meta.config };
  if (meta.training) {
    const { rng: _rng, adamSteps: _steps, format: _format, ...summary } = meta.training;
    out.training = { ...summary, format: WEIGHTS_FORMAT };
  }
  if (meta.decision) out.decision = meta.decision;
  return encodeCheckpoint(student, out);
}

/** `training.format` of weights-only checkpoints (they cannot be resumed). */
export const WEIGHTS_FORMAT = 'rdpp-weights/1';

export interface DecodedCheckpoint {
  tensors: Map<string, HostArray>;
  meta: CheckpointMeta;
}

export function decodeCheckpoint(bytes: Uint8Array, source: string): DecodedCheckpoint {
  const f = readSafetensors(bytes, source);
  const tensors = new Map<string, HostArray>();
  for (const [k, t] of f.tensors) tensors.set(k, { shape: t.shape, data: toFloat32(t) });
  const parse = (k: string) => {
    const v = f.metadata[k];
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v) as Record<string, unknown>;
    } catch {
      throw new Error(`${source}: metadata '${k}' is not valid JSON`);
    }
  };
  return {
    tensors,
    meta: { config: parse('config') ?? {}, training: parse('training'), decision: parse('decision') },
  };
}

/** The entries of `all` under `prefix`, with the prefix removed. */
export function withPrefix(all: Map<string, HostArray>, prefix: string): Map<string, HostArray> {
  const out = new Map<string, HostArray>();
  for (const [k, v] of all) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

/**
 * Load the student side (proj., bn., decoder.) from a checkpoint's tensors. All three modules are checked
 * before any is changed. `conv4`/`bn4` of OCBE may be absent (they are never used); with `partial`, any
 * tensor may be absent (the model keeps its current values), but every present one must fit.
 */
export function loadStudent(
  model: Rdpp,
  tensors: Map<string, HostArray>,
  source: string,
  opts: { partial?: boolean } = {},
): void {
  const parts: [NetState, Map<string, HostArray>][] = model
    .studentStates()
    .map((st) => [st, withPrefix(tensors, st.prefix)]);
  const optional = (n: string) => opts.partial === true || n.startsWith('conv4.') || n.startsWith('bn4.');
  // validate every module before changing any, and report all problems at once
  const lines: string[] = [];
  for (const [st, m] of parts) {
    for (const k of m.keys())
      if (!st.has(k) && !k.endsWith('num_batches_tracked'))
        lines.push(`unexpected '${st.prefix}${k}' (a different RD++ variant?)`);
    for (const d of st.decls) {
      const t = m.get(d.name);
      if (!t) {
        if (!optional(d.name)) lines.push(`missing '${st.prefix}${d.name}' [${d.shape}]`);
      } else if (t.shape.join() !== d.shape.join())
        lines.push(`'${st.prefix}${d.name}': expected [${d.shape}], found [${t.shape}]`);
    }
  }
  if (lines.length) {
    const more = lines.length > 16 ? `\n  … and ${lines.length - 16} more` : '';
    throw new Error(
      `${source} does not fit this model (teacher ${model.teacher.name}):\n  ${lines.slice(0, 16).join('\n  ')}${more}`,
    );
  }
  for (const [st, m] of parts) {
    for (const k of [...m.keys()]) if (k.endsWith('num_batches_tracked')) m.delete(k);
    st.load(m, source, { optional });
  }
}

/** Teacher weights from a torchvision state_dict (.pth or .safetensors): layer4, fc, num_batches_tracked ignored. */
export function loadTorchvisionTeacher(
  state: NetState,
  tensors: Map<string, HostArray>,
  source: string,
): void {
  state.load(torchvisionTeacherSubset(tensors), source, { strict: true });
}
