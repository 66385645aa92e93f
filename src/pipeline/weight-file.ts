/**
 * Reading weight files from bytes (safetensors or PyTorch .pth, recognised by content) with errors that
 * say what the file was expected to be: shared by the teacher and the checkpoint loaders of the pipeline.
 */
import { readSafetensors, toFloat32 } from '../engine/io/safetensors.js';
import type { CheckpointMeta } from '../model/checkpoint.js';
import { detectWeightFormat, readWeights, type WeightFormat } from '../model/import.js';
import type { HostArray } from '../model/state.js';

export interface WeightFile {
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
export function readWeightFile(
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

export const message = (e: unknown): string => (e as Error)?.message ?? String(e);

/** The checkpoint metadata (JSON strings) of `decodeCheckpoint`. */
export function checkpointMeta(metadata: Record<string, string>, source: string): CheckpointMeta {
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
