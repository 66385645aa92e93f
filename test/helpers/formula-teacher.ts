/**
 * A torchvision teacher file with the golden fixtures' formula weights (no download): what the training
 * and CLI tests pass as `teacherPath`. Returns the teacher it was written from (its state uninitialised).
 */
import { writeSafetensors } from '../../src/engine/io/safetensors.js';
import { formulaTensor } from '../../src/model/init.js';
import { TorchvisionTeacher } from '../../src/model/teacher/torchvision.js';
import { writeFileAtomic } from '../../src/platform/node.js';

export function writeFormulaTeacher(path: string): TorchvisionTeacher {
  const t = new TorchvisionTeacher('resnet18');
  const tensors = new Map(
    t.state.decls.map((d) => [
      d.name,
      { dtype: 'F32' as const, shape: d.shape, data: formulaTensor(`encoder.${d.name}`, d.shape) },
    ]),
  );
  writeFileAtomic(path, writeSafetensors(tensors));
  return t;
}
