/**
 * Checkpoints: the project's safetensors round trip is bit-identical; official RD++ checkpoints (.pth
 * `{proj, decoder, bn}`) import under the same names; wrong or corrupt files fail with a clear message
 * and change nothing.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  loadStudent,
  loadTorchvisionTeacher,
  studentTensors,
} from '../../src/model/checkpoint.js';
import { readWeights } from '../../src/model/import.js';
import { formulaTensor, Rng } from '../../src/model/init.js';
import { Rdpp } from '../../src/model/rdpp.js';
import { TorchvisionTeacher } from '../../src/model/teacher/torchvision.js';
import { sharedPath } from '../helpers/fixtures.js';
import { formulaTeacher } from '../helpers/formula-teacher.js';
import { gpu } from '../helpers/gpu.js';

beforeAll(async () => {
  await gpu();
});

function r18Model(seed: number): Rdpp {
  const m = new Rdpp(formulaTeacher());
  const rng = new Rng(seed);
  for (const s of m.studentStates()) s.init(rng);
  return m;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe('checkpoints', () => {
  it('a safetensors checkpoint written by the project loads back bit-identically', async () => {
    const a = r18Model(1);
    const b = r18Model(2);
    const saved = await studentTensors(a);
    const bytes = encodeCheckpoint(saved, {
      config: { teacher: 'resnet18', imageSize: 64 },
      training: { epoch: 3 },
    });
    const dec = decodeCheckpoint(bytes, 'test.safetensors');
    expect(dec.meta.config).toEqual({ teacher: 'resnet18', imageSize: 64 });
    expect(dec.meta.training).toEqual({ epoch: 3 });
    loadStudent(b, dec.tensors, 'test.safetensors');
    const back = await studentTensors(b);
    expect([...back.keys()]).toEqual([...saved.keys()]);
    for (const [k, v] of saved) expect(sameBits(back.get(k)!.data, v.data), k).toBe(true);
    // keys are the official ones
    expect(saved.has('proj.proj_a.proj.0.weight')).toBe(true);
    expect(saved.has('bn.bn_layer.0.conv1.weight')).toBe(true);
    expect(saved.has('decoder.layer1.0.upsample.0.weight')).toBe(true);
    a.dispose();
    b.dispose();
  });

  it('imports the official RD++ checkpoint layout ({proj, decoder, bn} .pth)', async () => {
    const path = sharedPath('fixtures', 'pth', 'official_rdpp_checkpoint_subset.pth');
    const w = readWeights(new Uint8Array(readFileSync(path)), path);
    expect([...w.keys()].some((k) => k.startsWith('proj.'))).toBe(true);
    expect([...w.keys()].some((k) => k.startsWith('decoder.'))).toBe(true);
    expect([...w.keys()].some((k) => k.startsWith('bn.'))).toBe(true);
    const m = r18Model(3);
    loadStudent(m, w, path, { partial: true });
    const back = await studentTensors(m);
    for (const [k, v] of w) {
      if (!back.has(k)) continue;
      expect(sameBits(back.get(k)!.data, formulaTensor(k, v.shape)), k).toBe(true);
    }
    m.dispose();
  });

  it('rejects a checkpoint of another variant, naming the tensors, and changes nothing', async () => {
    const m = r18Model(4);
    const before = await studentTensors(m);
    const bad = new Map(before);
    bad.set('proj.proj_a.proj.0.weight', { shape: [128, 256, 3, 3], data: new Float32Array(128 * 256 * 9) });
    bad.delete('decoder.layer3.1.bn2.running_var');
    const attempt = () => loadStudent(m, bad, 'other.safetensors');
    expect(attempt).toThrow(/other\.safetensors does not fit/);
    expect(attempt).toThrow(/'proj\.proj_a\.proj\.0\.weight': expected \[32,64,3,3\], found \[128,256,3,3\]/);
    expect(attempt).toThrow(/missing 'decoder\.layer3\.1\.bn2\.running_var'/);
    const after = await studentTensors(m);
    for (const [k, v] of before) expect(sameBits(after.get(k)!.data, v.data), k).toBe(true);
    m.dispose();
  });

  it('a truncated checkpoint fails with the file name', () => {
    const bytes = encodeCheckpoint(new Map([['proj.x', { shape: [4], data: new Float32Array(4) }]]), {
      config: {},
    });
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 3), 'cut.safetensors')).toThrow(
      /cut\.safetensors: truncated/,
    );
  });

  it('loads torchvision teacher weights from .pth (zip and legacy) and refuses an incomplete file', async () => {
    for (const f of ['resnet18_stem_layer1.pth', 'resnet18_stem_layer1_legacy.pth']) {
      const path = sharedPath('fixtures', 'pth', f);
      const w = readWeights(new Uint8Array(readFileSync(path)), path);
      expect(
        sameBits(w.get('conv1.weight')!.data, formulaTensor('encoder.conv1.weight', [64, 3, 7, 7])),
      ).toBe(true);
      const t = new TorchvisionTeacher('resnet18');
      t.state.initFormula('encoder.');
      // the fixture holds the stem and layer1 only: a teacher needs layer2 and layer3 too
      expect(() => loadTorchvisionTeacher(t.state, w, path)).toThrow(/missing 'layer2\.0\.conv1\.weight'/);
      t.state.dispose();
    }
  });
});
