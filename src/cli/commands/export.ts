/**
 * `rdpp export`: turn one of our safetensors checkpoints into an official RD++ `.pth` file, i.e. what
 * `torch.save({'proj': proj_layer.state_dict(), 'decoder': decoder.state_dict(), 'bn': bn.state_dict()})`
 * writes, so the original PyTorch code can load (and evaluate or fine-tune) a model trained here.
 * No GPU needed: tensors go from the checkpoint to the file as they are (float32, bit for bit). The
 * conversion is src/pipeline/export.ts; here are the options, the checked output path and the files.
 */
import { STUDENT_DICTS } from '../../model/checkpoint.js';
import { officialPth } from '../../pipeline/export.js';
import { writeFileAtomic } from '../../platform/node.js';
import { type Command, UsageError } from '../command.js';
import { readCheckpoint } from '../model-load.js';
import { checkOutputFile } from '../output-path.js';

export interface ExportResult {
  /** the teacher the student was trained against (from the checkpoint's config) */
  teacher: string;
  out: string;
  bytes: number;
  /** tensors written per dict */
  counts: Record<string, number>;
}

/** Read `checkpoint` and write its student side to `out` as an official RD++ .pth. */
export function runExport(checkpoint: string, out: string): ExportResult {
  checkOutputFile(out, {
    option: '--out',
    extensions: ['.pth', '.pt'],
    inputs: [{ option: '--checkpoint', path: checkpoint }],
  });
  const { bytes, counts, teacher } = officialPth(readCheckpoint(checkpoint), checkpoint);
  writeFileAtomic(out, bytes);
  return { out, bytes: bytes.length, counts, teacher };
}

export const exportCommand: Command = {
  name: 'export',
  summary: 'write a checkpoint as an official RD++ .pth (torch.save of {proj, decoder, bn})',
  usage: '--checkpoint <model.safetensors> --out <file.pth>',
  options: {
    checkpoint: { type: 'string', help: 'our .safetensors checkpoint (from rdpp train)' },
    out: { type: 'string', help: 'the .pth file to write' },
  },
  async run({ values }) {
    const checkpoint = values.checkpoint as string | undefined;
    const out = values.out as string | undefined;
    if (!checkpoint) throw new UsageError('--checkpoint <model.safetensors> is required');
    if (!out) throw new UsageError('--out <file.pth> is required');
    const r = runExport(checkpoint, out);
    const parts = STUDENT_DICTS.map((d) => `${d} ${r.counts[d]}`).join(', ');
    console.log(`wrote ${r.out} (${(r.bytes / 2 ** 20).toFixed(1)} MiB; tensors: ${parts})`);
    if (r.counts.bn === 0 || r.counts.decoder === 0 || r.counts.proj === 0)
      console.log('note: some dicts are empty; the official code will report missing keys for them');
    const teacher = r.teacher;
    if (teacher !== 'wide_resnet50_2')
      console.log(
        `note: this student was trained against the ${teacher} teacher; it only makes sense with that ` +
          "teacher's features (the official code's encoder is torchvision wide_resnet50_2" +
          (teacher === 'resnet18' ? ', or resnet18 for its ResNet-18 variant)' : ')'),
      );
    console.log(
      'load it in the official RD++ code with: ' +
        `ckp = torch.load(${JSON.stringify(r.out)}, map_location='cpu'); ` +
        "proj_layer.load_state_dict(ckp['proj']); decoder.load_state_dict(ckp['decoder']); " +
        "bn.load_state_dict(ckp['bn'])",
    );
    return 0;
  },
};
