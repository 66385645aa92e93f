/**
 * Exported teacher files (src/model/teacher/teacher-file.ts, `rdpp teacher export`), without a GPU and
 * without npm: formula weights for the Keras ResNet-50 and torchvision ResNet-18 layouts. The round trip
 * is bit-exact in f32 and equals round-to-nearest-even in f16 (kernels; 1-D tensors stay f32); only the
 * teacher's tensors are written, in its order, with kind, preprocessing, source and dtype in the metadata;
 * wrong files are refused with the reason and the right option; the command checks its output name,
 * refuses to overwrite its input and writes atomically, printing the output's sha256 and size.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { floatToHalfBits, halfBitsToFloat } from '../../src/engine/io/f16.js';
import { readSafetensors, type TensorToWrite, writeSafetensors } from '../../src/engine/io/safetensors.js';
import { encodeCheckpoint } from '../../src/model/checkpoint.js';
import { formulaTensor } from '../../src/model/init.js';
import type { HostArray } from '../../src/model/state.js';
import {
  encodeTeacherFile,
  newTeacher,
  readTeacherWeights,
  TEACHER_FILE_FORMAT,
  type TeacherDtype,
} from '../../src/model/teacher/teacher-file.js';
import type { TeacherChoice } from '../../src/train/config.js';

const dir = mkdtempSync(join(tmpdir(), 'rdpp-teacher-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const formulaCache = new Map<TeacherChoice, Map<string, HostArray>>();

/** Formula weights for every tensor a `kind` teacher declares (fresh copies: tests alter them). */
function formulaWeights(kind: TeacherChoice): Map<string, HostArray> {
  if (!formulaCache.has(kind)) formulaCache.set(kind, makeFormulaWeights(kind));
  return new Map([...formulaCache.get(kind)!].map(([k, v]) => [k, { shape: v.shape, data: v.data.slice() }]));
}

function makeFormulaWeights(kind: TeacherChoice): Map<string, HostArray> {
  return new Map(
    newTeacher(kind).state.decls.map((d) => [
      d.name,
      { shape: d.shape, data: formulaTensor(`t.${d.name}`, d.shape) },
    ]),
  );
}

const origin = { source: 'npm:example@1.0.0', sha256: 'ab'.repeat(32) };
const encode = (kind: TeacherChoice, dtype: TeacherDtype, w = formulaWeights(kind)) =>
  encodeTeacherFile(kind, w, { dtype, origin }).bytes;

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function plainSafetensors(w: Map<string, HostArray>, metadata?: Record<string, string>): Uint8Array {
  const t = new Map<string, TensorToWrite>();
  for (const [k, v] of w) t.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
  return writeSafetensors(t, metadata);
}

describe('exported teacher files', () => {
  it('round-trips bit for bit in f32, with the metadata and only the teacher tensors in order', () => {
    for (const kind of ['resnet50-keras', 'resnet18'] as const) {
      const w = formulaWeights(kind);
      const bytes = encode(kind, 'f32', w);
      const f = readSafetensors(bytes, 'x');
      expect(f.metadata).toMatchObject({
        format: TEACHER_FILE_FORMAT,
        teacher: kind,
        preprocess: kind === 'resnet50-keras' ? 'caffe' : 'imagenet',
        dtype: 'f32',
        source: origin.source,
        source_sha256: origin.sha256,
        tensors: String(w.size),
      });
      expect(f.metadata.preprocess_detail).toMatch(kind === 'resnet50-keras' ? /103\.939/ : /0\.485/);
      expect([...f.tensors.keys()]).toEqual([...w.keys()]);
      const back = readTeacherWeights(kind, bytes, 'x.safetensors');
      expect(back.meta?.teacher).toBe(kind);
      expect([...back.tensors.keys()]).toEqual([...w.keys()]);
      for (const [k, v] of w) expect(sameBits(back.tensors.get(k)!.data, v.data), k).toBe(true);
    }
    // the Keras teacher: 258 tensors, 8,589,184 values, 34.4 MB
    const keras = encode('resnet50-keras', 'f32');
    expect(readSafetensors(keras, 'k').tensors.size).toBe(258);
    expect(readSafetensors(keras, 'k').metadata.parameters).toBe('8589184');
    expect(keras.byteLength).toBeGreaterThan(8_589_184 * 4);
    expect(keras.byteLength).toBeLessThan(8_589_184 * 4 + 40_000);
  });

  it('stores kernels as f16 (nearest even) and 1-D tensors as f32, widened to f32 on load', () => {
    const w = formulaWeights('resnet50-keras');
    // a kernel value beyond f16 precision and a tie, to see the rounding in the file
    w.get('conv1.weight')!.data[0] = 0.1;
    w.get('conv1.weight')!.data[1] = 1 + 2 ** -11; // tie between 1 and 1 + 2^-10: even → 1
    w.get('bn_conv1.var')!.data[0] = 83614.734375; // the real stem variance: fine in f32
    const bytes = encode('resnet50-keras', 'f16', w);
    const f = readSafetensors(bytes, 'x');
    expect(f.metadata.dtype).toBe('f16');
    expect(f.metadata.dtype_detail).toMatch(/kernels f16.*1-D.*f32/);
    for (const [k, t] of f.tensors) expect(t.dtype, k).toBe(t.shape.length >= 2 ? 'F16' : 'F32');
    // 8,512,704 kernel values × 2 bytes + 76,480 1-D values × 4 bytes ≈ 17.3 MB
    expect(bytes.byteLength).toBeGreaterThan(17_300_000);
    expect(bytes.byteLength).toBeLessThan(17_400_000);
    const back = readTeacherWeights('resnet50-keras', bytes, 'x').tensors;
    for (const [k, v] of w) {
      const got = back.get(k)!.data;
      if (v.shape.length < 2) expect(sameBits(got, v.data), k).toBe(true);
      else
        expect(
          got.every((g, i) => g === halfBitsToFloat(floatToHalfBits(v.data[i]!))),
          k,
        ).toBe(true);
    }
    expect(back.get('conv1.weight')!.data[0]).toBe(halfBitsToFloat(0x2e66)); // 0.0999755859375
    expect(back.get('conv1.weight')!.data[1]).toBe(1);
    expect(back.get('bn_conv1.var')!.data[0]).toBe(83614.734375);
  });

  it('refuses a kernel value beyond the f16 range, naming the tensor', () => {
    const w = formulaWeights('resnet18');
    w.get('layer2.0.conv1.weight')!.data[7] = 70000;
    expect(() => encode('resnet18', 'f16', w)).toThrow(
      /layer2\.0\.conv1\.weight\[7\] = 70000 is beyond the f16 range \(±65504\).*--dtype f32/,
    );
  });

  it('refuses files of the wrong kind, RD++ checkpoints, altered metadata and incomplete files', () => {
    const keras = encode('resnet50-keras', 'f32');
    const r18 = encode('resnet18', 'f32');
    expect(() => readTeacherWeights('resnet18', keras, 'k.safetensors')).toThrow(
      /k\.safetensors holds an exported Keras ResNet-50 teacher.*pass it as --teacher resnet50-keras=k\.safetensors/,
    );
    expect(() => readTeacherWeights('resnet50-keras', r18, 'r.safetensors')).toThrow(
      /holds an exported torchvision ResNet-18 teacher.*pass it as --teacher resnet18=r\.safetensors/,
    );
    expect(() => readTeacherWeights('wide_resnet50_2', r18, 'r.safetensors')).toThrow(
      /not torchvision WideResNet-50-2 weights: pass it as --teacher resnet18=/,
    );
    // a plain torchvision state_dict (no metadata) given as the Keras teacher
    const plain = plainSafetensors(formulaWeights('resnet18'));
    expect(() => readTeacherWeights('resnet50-keras', plain, 'p.safetensors')).toThrow(
      /p\.safetensors holds torchvision ResNet-18 weights, not Keras ResNet-50 weights: pass it as --teacher resnet18=/,
    );
    const ck = encodeCheckpoint(
      new Map([['proj.proj_a.0.weight', { shape: [2], data: new Float32Array(2) }]]),
      { config: { teacher: 'resnet50-keras' } },
    );
    expect(() => readTeacherWeights('resnet50-keras', ck, 'best.safetensors')).toThrow(
      /best\.safetensors is an RD\+\+ checkpoint .*give it as --checkpoint/,
    );
    const f = readSafetensors(keras, 'k');
    const relabelled = plainSafetensors(formulaWeights('resnet50-keras'), {
      ...f.metadata,
      preprocess: 'imagenet',
    });
    expect(() => readTeacherWeights('resnet50-keras', relabelled, 'e.safetensors')).toThrow(
      /e\.safetensors: preprocess 'imagenet' for a resnet50-keras teacher \(which takes 'caffe'\)/,
    );
    const partial = formulaWeights('resnet50-keras');
    partial.delete('res4f_branch2c.weight');
    expect(() =>
      readTeacherWeights('resnet50-keras', encode('resnet50-keras', 'f32', partial), 'i.safetensors'),
    ).toThrow(/i\.safetensors is not a complete Keras ResNet-50 teacher:.*missing 'res4f_branch2c\.weight'/s);
    expect(() => readTeacherWeights('resnet50-keras', new Uint8Array(16), 'z.bin')).toThrow(
      /z\.bin: not a safetensors or PyTorch \.pth file/,
    );
  });
});

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const error = vi.spyOn(console, 'error').mockImplementation(() => {});
  try {
    const code = await main(argv);
    const text = (s: typeof log) => s.mock.calls.map((c) => c.join(' ')).join('\n');
    return { code, out: text(log), err: text(error) };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('rdpp teacher export (from a torchvision file)', () => {
  // a torchvision state_dict as users have it: layer4, fc and num_batches_tracked included
  const src = join(dir, 'resnet18-full.safetensors');
  const full = formulaWeights('resnet18');
  full.set('layer4.0.conv1.weight', { shape: [512, 256, 3, 3], data: new Float32Array(512 * 256 * 9) });
  full.set('fc.weight', { shape: [1000, 512], data: new Float32Array(512_000) });
  const t = new Map<string, TensorToWrite>();
  for (const [k, v] of full) t.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
  t.set('bn1.num_batches_tracked', { dtype: 'I64', shape: [], data: new BigInt64Array(1) });
  writeFileSync(src, writeSafetensors(t));

  it('writes only stem..layer3, prints sha256 and size, and re-exports as f16 with the origin kept', async () => {
    const out = join(dir, 'r18.safetensors');
    const r = await cli(['teacher', 'export', '--teacher', `resnet18=${src}`, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const bytes = readFileSync(out);
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(r.out).toContain(`sha256 ${sha}`);
    expect(r.out).toContain(`(${bytes.length} bytes)`);
    expect(r.out).toContain(`use it with: --teacher resnet18=${out}`);
    const f = readSafetensors(new Uint8Array(bytes), out);
    expect([...f.tensors.keys()]).toEqual(newTeacher('resnet18').state.decls.map((d) => d.name));
    const srcSha = createHash('sha256').update(readFileSync(src)).digest('hex');
    expect(f.metadata).toMatchObject({ source: 'file:resnet18-full.safetensors', source_sha256: srcSha });

    const out16 = join(dir, 'r18-f16.safetensors');
    const r16 = await cli([
      'teacher',
      'export',
      '--teacher',
      `resnet18=${out}`,
      '--out',
      out16,
      '--dtype',
      'f16',
    ]);
    expect(r16.code, r16.err).toBe(0);
    expect(r16.out).toMatch(/f16: largest relative rounding error [\d.e-]+, \d+ values stored as subnormals/);
    const g = readSafetensors(new Uint8Array(readFileSync(out16)), out16);
    expect(g.metadata).toMatchObject({
      dtype: 'f16',
      source: 'file:resnet18-full.safetensors',
      source_sha256: srcSha,
    });
    expect(g.metadata.converted_from).toBe(`file:r18.safetensors (f32, sha256 ${sha})`);
    // nothing but the outputs and the source in the folder: the writes left no temporary files
    expect(readdirSync(dir).sort()).toEqual([
      'r18-f16.safetensors',
      'r18.safetensors',
      'resnet18-full.safetensors',
    ]);
  });

  it('checks the output name, refuses to overwrite its input (also through a link), and bad options', async () => {
    const before = readFileSync(src);
    const same = await cli(['teacher', 'export', '--teacher', `resnet18=${src}`, '--out', src]);
    expect(same.code).toBe(2);
    expect(same.err).toMatch(/is the input teacher file itself/);
    const link = join(dir, 'link.safetensors');
    symlinkSync(src, link);
    const viaLink = await cli(['teacher', 'export', '--teacher', `resnet18=${src}`, '--out', link]);
    expect(viaLink.err).toMatch(/is the input teacher file itself/);
    rmSync(link);
    expect(readFileSync(src).equals(before)).toBe(true);
    const pth = await cli(['teacher', 'export', '--teacher', `resnet18=${src}`, '--out', join(dir, 'x.pth')]);
    expect(pth.code).toBe(2);
    expect(pth.err).toMatch(/give a file name ending in \.safetensors/);
    const dtype = await cli(['teacher', 'export', '--out', join(dir, 'x.safetensors'), '--dtype', 'bf16']);
    expect(dtype.err).toMatch(/--dtype must be f32 or f16, got 'bf16'/);
    expect((await cli(['teacher', 'import'])).err).toMatch(/expected `rdpp teacher export/);
    const wrong = await cli([
      'teacher',
      'export',
      '--teacher',
      `wrn50=${src}`,
      '--out',
      join(dir, 'w.safetensors'),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/holds torchvision ResNet-18 weights.*--teacher resnet18=/);
  });
});
