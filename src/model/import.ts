/**
 * Reading weight files by content: safetensors (this project's checkpoints, converted teachers) or
 * PyTorch `.pth` (torchvision teachers, official RD++ checkpoints `{proj, decoder, bn}`), detected from the
 * first bytes, never from the file name. Returns host arrays by (flattened) name.
 */
import { readPth } from '../engine/io/pth.js';
import { readSafetensors, toFloat32 } from '../engine/io/safetensors.js';
import type { HostArray } from './state.js';

export type WeightFormat = 'safetensors' | 'pth-zip' | 'pth-legacy';

export function detectWeightFormat(bytes: Uint8Array, source: string): WeightFormat {
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04)
    return 'pth-zip';
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] === 0x02) return 'pth-legacy';
  if (bytes.length >= 9 && bytes[8] === 0x7b /* '{' after the u64 header length */) return 'safetensors';
  throw new Error(`${source}: not a safetensors or PyTorch .pth file (unrecognised first bytes)`);
}

/** All float tensors of a weight file, as float32 host arrays (integer buffers such as num_batches_tracked dropped). */
export function readWeights(bytes: Uint8Array, source: string): Map<string, HostArray> {
  const out = new Map<string, HostArray>();
  if (detectWeightFormat(bytes, source) === 'safetensors') {
    for (const [k, t] of readSafetensors(bytes, source).tensors) {
      if (t.dtype.startsWith('I') || t.dtype === 'BOOL' || t.dtype === 'U8') continue;
      out.set(k, { shape: t.shape, data: toFloat32(t) });
    }
    return out;
  }
  for (const [k, t] of readPth(bytes, source, { flatten: true })) {
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) continue;
    out.set(k, { shape: t.shape, data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data) });
  }
  return out;
}
