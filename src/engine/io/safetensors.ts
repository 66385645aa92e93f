/**
 * safetensors: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
 * The JSON maps name → {dtype, shape, data_offsets: [begin, end]} (bytes, relative to the data buffer),
 * plus an optional "__metadata__" string → string map. Little-endian, C-contiguous.
 *
 * Reading validates everything a corrupt or truncated file could break and names the problem.
 * Writing keeps the data buffer 8-byte aligned (header padded with spaces), like the reference writer.
 */
import { halfBitsToFloat } from './f16.js';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<SafeDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** The raw little-endian bytes (a view into the file). */
  bytes: Uint8Array;
}

export interface SafeFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Parse a safetensors file. `source` names the file in error messages. */
export function readSafetensors(file: Uint8Array, source = 'safetensors file'): SafeFile {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (file.byteLength < 8) fail(`truncated: ${file.byteLength} bytes, not even a header length`);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > file.byteLength - 8)
    fail(`truncated or not safetensors: header length ${n} exceeds the file size ${file.byteLength}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)));
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message}); is this a safetensors file?`);
  }
  const data = file.subarray(8 + n);
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (!e || typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES))
      fail(`tensor '${name}': unknown dtype ${e?.dtype}`);
    if (!Array.isArray(e.shape) || !Array.isArray(e.data_offsets))
      fail(`tensor '${name}': missing shape or data_offsets`);
    const [b, end] = e.data_offsets!;
    const count = e.shape!.reduce((a, d) => a * d, 1);
    const expect = count * DTYPE_BYTES[e.dtype as SafeDType];
    if (end - b !== expect)
      fail(`tensor '${name}': ${end - b} bytes for shape [${e.shape}] of ${e.dtype} (expected ${expect})`);
    if (end > data.byteLength)
      fail(`truncated: tensor '${name}' ends at byte ${end} of a ${data.byteLength}-byte data buffer`);
    tensors.set(name, { dtype: e.dtype as SafeDType, shape: e.shape!, bytes: data.subarray(b, end) });
  }
  return { tensors, metadata };
}

/** The values of a tensor as float32 (F32, F16, BF16, F64 and integer types are converted). */
export function toFloat32(t: SafeTensor): Float32Array {
  const { bytes } = t;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[t.dtype];
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfBitsToFloat(dv.getUint16(i * 2, true));
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) {
        const u = new Uint32Array([dv.getUint16(i * 2, true) << 16]);
        out[i] = new Float32Array(u.buffer)[0]!;
      }
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      break;
  }
  return out;
}

/** The value of an f16 bit pattern (see f16.ts). */
export const halfToFloat = halfBitsToFloat;

export interface TensorToWrite {
  dtype: SafeDType;
  shape: number[];
  data: ArrayBufferView;
}

/** Serialise tensors (in the given order) and string metadata to safetensors bytes. */
export function writeSafetensors(
  tensors: Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, d) => a * d, 1);
    const bytes = count * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes)
      throw new SafetensorsError(
        `tensor '${name}': ${t.data.byteLength} bytes for shape [${t.shape}] of ${t.dtype}`,
      );
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let p = 8 + json.byteLength;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), p);
    p += t.data.byteLength;
  }
  return out;
}
