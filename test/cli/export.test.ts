/**
 * `rdpp export`: a tiny checkpoint (ResNet-18 student, official init) exported to an official RD++ .pth,
 * then loaded back through the import path (readWeights + loadStudent) into a fresh model, bit for bit.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPthObject } from '../../src/engine/io/pth.js';
import { encodeCheckpoint, loadStudent, studentTensors } from '../../src/model/checkpoint.js';
import { readWeights } from '../../src/model/import.js';
import { Rng } from '../../src/model/init.js';
import { Rdpp } from '../../src/model/rdpp.js';
import type { HostArray } from '../../src/model/state.js';
import { TorchvisionTeacher } from '../../src/model/teacher/torchvision.js';
import { writeFileAtomic } from '../../src/platform/node.js';
import { defaultConfig } from '../../src/train/config.js';
import { cli } from '../helpers/cli.js';
import { gpu } from '../helpers/gpu.js';

const dir = mkdtempSync(join(tmpdir(), 'rdpp-export-'));
const ckPath = join(dir, 'model.safetensors');
let student: Map<string, HostArray>;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  await gpu();
  const model = new Rdpp(new TorchvisionTeacher('resnet18'));
  const rng = new Rng(11);
  for (const st of model.studentStates()) st.init(rng);
  student = await studentTensors(model);
  model.dispose();
  const config = { ...defaultConfig('tire'), teacher: 'resnet18', imageSize: 64 };
  // an optimizer moment rides along in real checkpoints: it must not be exported
  const withOptim = new Map(student);
  withOptim.set('optim.m.proj.x', { shape: [2], data: new Float32Array([1, 2]) });
  writeFileAtomic(ckPath, encodeCheckpoint(withOptim, { config }));
});

/** Index of the first element whose bits differ (or the length when the lengths differ); -1 if none. */
function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

describe('rdpp export', () => {
  it('writes {proj, decoder, bn} that load back into a fresh model bit-identically', async () => {
    const out = join(dir, 'sub', 'rdpp.pth');
    const r = await cli(['export', '--checkpoint', ckPath, '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`wrote ${out}`);
    expect(r.out).toMatch(/torch\.load\(.*rdpp\.pth.*\); proj_layer\.load_state_dict\(ckp\['proj'\]\)/);

    const bytes = new Uint8Array(readFileSync(out));
    const top = readPthObject(bytes, out) as Map<string, Map<string, unknown>>;
    expect([...top.keys()]).toEqual(['proj', 'decoder', 'bn']);
    const weights = readWeights(bytes, out);
    expect([...weights.keys()].sort()).toEqual([...student.keys()].sort());
    expect(weights.has('optim.m.proj.x')).toBe(false);

    await gpu();
    const fresh = new Rdpp(new TorchvisionTeacher('resnet18'));
    try {
      loadStudent(fresh, weights, out);
      const back = await studentTensors(fresh);
      expect([...back.keys()]).toEqual([...student.keys()]);
      for (const [k, v] of student) {
        expect(back.get(k)?.shape, k).toEqual(v.shape);
        expect(firstBitDiff(back.get(k)!.data, v.data), k).toBe(-1);
      }
    } finally {
      fresh.dispose();
    }
  });

  it('refuses a checkpoint without student tensors and missing options', async () => {
    const empty = join(dir, 'empty.safetensors');
    writeFileAtomic(
      empty,
      encodeCheckpoint(new Map([['optim.step', { shape: [1], data: new Float32Array([3]) }]]), {
        config: { imageSize: 64 },
      }),
    );
    const r = await cli(['export', '--checkpoint', empty, '--out', join(dir, 'x.pth')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/has no student tensors/);
    expect((await cli(['export', '--checkpoint', ckPath])).code).toBe(2);
    expect(
      (await cli(['export', '--checkpoint', join(dir, 'nope'), '--out', join(dir, 'y.pth')])).err,
    ).toMatch(/checkpoint not found/);
  });
});
