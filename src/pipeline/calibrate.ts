/**
 * Decision thresholds: calibrated from the scores of good images the model did not train on (the 1 %
 * false-rejection rule of `rdpp test --calibrate`), and stored in a checkpoint's metadata by rewriting
 * only its safetensors header.
 */
import { readSafetensors } from '../engine/io/safetensors.js';
import { calibrateThreshold, type Decision } from '../eval/threshold.js';
import type { Rdpp } from '../model/rdpp.js';
import { evaluate } from './evaluate.js';

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
  onProgress?: (done: number, total: number) => void,
): Promise<Decision> {
  const { scored } = await evaluate(
    model,
    normals.map((rgb) => ({ rgb })),
    { size, batch, onProgress },
  );
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
