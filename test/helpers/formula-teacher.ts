/**
 * A torchvision teacher file with the golden fixtures' formula weights (no download): what the training
 * and CLI tests pass as `teacherPath`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { writeSafetensors } from '../../src/engine/io/safetensors.js';
import { formulaTensor } from '../../src/model/init.js';
import { Rdpp } from '../../src/model/rdpp.js';
import { TorchvisionTeacher } from '../../src/model/teacher/torchvision.js';
import { writeFileAtomic } from '../../src/platform/node.js';
import { defaultConfig, type TrainConfig } from '../../src/train/config.js';
import { gpu } from './gpu.js';

/** A ResNet-18 teacher with the fixtures' formula weights, in memory. */
export function formulaTeacher(): TorchvisionTeacher {
  const t = new TorchvisionTeacher('resnet18');
  t.state.initFormula('encoder.');
  return t;
}

/** ResNet-18 RD++ with the fixtures' formula weights everywhere (teacher and student), in memory. */
export function formulaRdpp(): Rdpp {
  const m = new Rdpp(formulaTeacher());
  m.ocbe.state.initFormula('bn.');
  m.decoder.state.initFormula('decoder.');
  m.proj.state.initFormula('proj.');
  return m;
}

/** Writes the file; returns the teacher it was written from (its state uninitialised). */
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

/**
 * A test file's temporary folder holding the formula teacher: the GPU is opened and the teacher written
 * before its tests (beforeAll), the folder removed after them (afterAll).
 */
export function formulaTeacherDir(prefix: string): { dir: string; teacherPath: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const teacherPath = join(dir, 'resnet18-formula.safetensors');
  beforeAll(async () => {
    await gpu();
    writeFormulaTeacher(teacherPath);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, teacherPath };
}

/**
 * The training tests' configuration: the formula ResNet-18 teacher at `teacherPath`, 32², batch 2, and
 * what `o` sets (epochs and seed at least).
 */
export function formulaTrainConfig(
  category: string,
  teacherPath: string,
  o: Pick<TrainConfig, 'epochs' | 'seed'> & Partial<TrainConfig>,
): TrainConfig {
  return { ...defaultConfig(category), teacher: 'resnet18', teacherPath, imageSize: 32, batch: 2, ...o };
}

/** `n` smooth synthetic training images (CHW RGB in [0, 1], size × size), each its own phase of one pattern. */
export function syntheticImages(n: number, size: number): Float32Array[] {
  return Array.from({ length: n }, (_, k) => {
    const a = new Float32Array(3 * size * size);
    for (let i = 0; i < a.length; i++) a[i] = (Math.sin(i * 0.37 + k * 1.7) + 1) / 2;
    return a;
  });
}
