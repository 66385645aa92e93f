/**
 * A checkpoint as an official RD++ `.pth` (`rdpp export`): what `torch.save({'proj':
 * proj_layer.state_dict(), 'decoder': decoder.state_dict(), 'bn': bn.state_dict()})` writes, so that the
 * original PyTorch code can load a model trained here. Bytes to bytes: the tensors go from the checkpoint
 * to the file as they are (float32, bit for bit); no GPU needed.
 */
import { type PthTensorToWrite, writePth } from '../engine/io/pth-write.js';
import { type DecodedCheckpoint, STUDENT_DICTS } from '../model/checkpoint.js';

export interface OfficialExport {
  /** the .pth file's bytes */
  bytes: Uint8Array;
  /** the teacher the student was trained against (from the checkpoint's config) */
  teacher: string;
  /** tensors written per dict */
  counts: Record<string, number>;
}

/** The student side of `ck` (read from `source`, for messages) as an official RD++ .pth. */
export function officialPth(ck: DecodedCheckpoint, source: string): OfficialExport {
  const dicts = new Map<string, Map<string, PthTensorToWrite>>(STUDENT_DICTS.map((d) => [d, new Map()]));
  for (const [name, t] of ck.tensors) {
    const dot = name.indexOf('.');
    const dict = dicts.get(name.slice(0, dot));
    if (dot > 0 && dict) dict.set(name.slice(dot + 1), t);
  }
  const counts = Object.fromEntries([...dicts].map(([k, m]) => [k, m.size]));
  if (![...dicts.values()].some((m) => m.size > 0))
    throw new Error(
      `${source} has no student tensors (proj.…, decoder.…, bn.…): nothing to export ` +
        `(tensors found: ${[...ck.tensors.keys()].slice(0, 5).join(', ') || 'none'})`,
    );
  return { bytes: writePth(dicts), counts, teacher: String(ck.meta.config.teacher ?? 'resnet50-keras') };
}
