/**
 * The .pth writer (src/engine/io/pth-write.ts): round trips through our own reader (bit-exact, odd
 * shapes, 0-dim and empty tensors, num_batches_tracked as int64), the container layout compared with a
 * real torch.save output (shared/fixtures/pth/official_rdpp_checkpoint_subset.pth), and an independent
 * check with Python's zipfile + pickle (CRCs, 64-byte alignment, the unpickled structure and values).
 * torch itself is not available here, so loading in real PyTorch is not tested.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PthTensor, readPth, readPthObject } from '../../src/engine/io/pth.js';
import { crc32, type PthTensorToWrite, writePth } from '../../src/engine/io/pth-write.js';
import { readZip } from '../../src/engine/io/zip.js';
import { readWeights } from '../../src/model/import.js';
import { sharedPath } from '../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'rdpp-pth-write-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(Math.sin(i * 12.9898 + seed) * 43758.5453) % 3;
  return a;
}

function t(shape: number[], seed: number): PthTensorToWrite {
  return {
    shape,
    data: values(
      shape.reduce((a, d) => a * d, 1),
      seed,
    ),
  };
}

/** A checkpoint with odd shapes, a 0-dim tensor, an empty tensor, num_batches_tracked, big numel. */
function sample(): Map<string, Map<string, PthTensorToWrite>> {
  const special = new Float32Array([Number.NaN, -0, Number.POSITIVE_INFINITY, -1e-45, 3.4028234e38]);
  return new Map([
    [
      'proj',
      new Map([
        ['proj_a.proj.0.weight', t([3, 5, 7, 1], 1)],
        ['proj_a.proj.0.bias', t([3], 2)],
        ['special', { shape: [5], data: special }],
      ]),
    ],
    [
      'decoder',
      new Map([
        ['layer1.0.bn1.weight', t([301], 3)],
        ['layer1.0.bn1.num_batches_tracked', { shape: [], data: new Float32Array([41.6]) }],
        ['scalar', { shape: [], data: new Float32Array([-2.5]) }],
        ['empty', { shape: [2, 0, 3], data: new Float32Array(0) }],
        ['big', t([70001], 4)],
      ]),
    ],
    [
      'bn',
      new Map([
        ['bn_layer.0.conv1.weight', t([4, 3, 2, 2, 1], 5)],
        ['bn_layer.0.bn1.weight', t([4], 6)],
        ['bn_layer.0.bn1.bias', t([4], 7)],
      ]),
    ],
  ]);
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

describe('writePth', () => {
  it('round-trips bit-exactly through our reader, with num_batches_tracked as int64', () => {
    const dicts = sample();
    const bytes = writePth(dicts);
    const flat = readPth(bytes, 'written.pth', { flatten: true });
    const expectedNames = [...dicts].flatMap(([d, m]) => [...m.keys()].map((k) => `${d}.${k}`));
    expect([...flat.keys()]).toEqual(expectedNames);
    for (const [d, m] of dicts)
      for (const [k, w] of m) {
        const got = flat.get(`${d}.${k}`) as PthTensor;
        expect(got.shape).toEqual(w.shape);
        if (k.endsWith('num_batches_tracked')) {
          expect(got.dtype).toBe('I64');
          expect(Array.from(got.data as BigInt64Array)).toEqual([42n]);
        } else {
          expect(got.dtype).toBe('F32');
          expect(bits(got.data as Float32Array)).toEqual(bits(w.data));
        }
      }
    // readWeights (the import path) gives the flattened float tensors and drops the int64 one
    const w = readWeights(bytes, 'written.pth');
    expect([...w.keys()]).toEqual(expectedNames.filter((n) => !n.endsWith('num_batches_tracked')));
    expect(w.get('proj.proj_a.proj.0.weight')?.shape).toEqual([3, 5, 7, 1]);
    expect(w.get('decoder.scalar')?.shape).toEqual([]);
    expect(Array.from(w.get('decoder.scalar')?.data ?? [])).toEqual([-2.5]);
    // the top object is a dict of (Ordered)dicts in order
    const obj = readPthObject(bytes, 'written.pth') as Map<string, Map<string, unknown>>;
    expect([...obj.keys()]).toEqual(['proj', 'decoder', 'bn']);
    expect(obj.get('bn')?.get('bn_layer.0.conv1.weight')).toBeInstanceOf(PthTensor);
  });

  it('lays the zip out like torch.save: names, flags, FB padding to 64 bytes, descriptors, CRCs', () => {
    const bytes = writePth(sample(), 'my_model');
    const zip = readZip(bytes, 'written.pth');
    const names = [...zip.entries.keys()];
    expect(names.slice(0, 2)).toEqual(['my_model/data.pkl', 'my_model/byteorder']);
    expect(names[names.length - 1]).toBe('my_model/version');
    // storages sorted as strings, like torch: data/0, data/1, data/10, data/2, …
    const keys = names.filter((n) => n.includes('/data/')).map((n) => n.split('/').pop());
    expect(keys).toEqual(['0', '1', '10', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(new TextDecoder().decode(zip.read('my_model/version'))).toBe('3\n');
    expect(new TextDecoder().decode(zip.read('my_model/byteorder'))).toBe('little');
    for (const e of zip.entries.values()) expect(e.dataOffset % 64).toBe(0);

    // the same fixed header fields as the real torch.save file
    const real = new Uint8Array(readFileSync(sharedPath('fixtures/pth/official_rdpp_checkpoint_subset.pth')));
    const realZip = readZip(real, 'fixture');
    const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const fixedLocal = (b: Uint8Array, at: number) => Array.from(b.subarray(at, at + 26)); // up to name length
    const localAt = (z: ReturnType<typeof readZip>, name: string) => {
      const e = z.get(name)!;
      const b = z.bytes;
      // walk back from the payload: the local extra field is the FB record
      for (let p = e.dataOffset - 30; p >= 0; p--)
        if (
          dv(b).getUint32(p, true) === 0x04034b50 &&
          p + 30 + dv(b).getUint16(p + 26, true) + dv(b).getUint16(p + 28, true) === e.dataOffset
        )
          return p;
      throw new Error(`no local header for ${name}`);
    };
    const ours = localAt(zip, 'my_model/data/1');
    const theirs = localAt(realZip, 'official_rdpp_checkpoint_subset/data/1');
    expect(fixedLocal(bytes, ours)).toEqual(fixedLocal(real, theirs));
    const nameLen = dv(bytes).getUint16(ours + 26, true);
    expect(String.fromCharCode(bytes[ours + 30 + nameLen]!, bytes[ours + 31 + nameLen]!)).toBe('FB');
    // data descriptor after the payload: signature, CRC, sizes
    const e = zip.get('my_model/data/1')!;
    const d = dv(bytes);
    expect(d.getUint32(e.dataOffset + e.size, true)).toBe(0x08074b50);
    expect(d.getUint32(e.dataOffset + e.size + 4, true)).toBe(crc32(zip.read(e)));
    expect(d.getUint32(e.dataOffset + e.size + 8, true)).toBe(e.size);
    // zip64 end record + locator + end record, as miniz writes them
    expect(d.getUint32(bytes.length - 22, true)).toBe(0x06054b50);
    expect(d.getUint32(bytes.length - 42, true)).toBe(0x07064b50);
    expect(dv(real).getUint32(real.length - 42, true)).toBe(0x07064b50);
    const zip64 = (b: Uint8Array) => Array.from(b.subarray(b.length - 98, b.length - 82)); // signature…versions
    expect(zip64(bytes)).toEqual(zip64(real));
  });

  it('computes the standard CRC-32', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('rewrites the real torch.save fixture into a file that reads back identically', () => {
    const real = new Uint8Array(readFileSync(sharedPath('fixtures/pth/official_rdpp_checkpoint_subset.pth')));
    const obj = readPthObject(real, 'fixture') as Map<string, Map<string, PthTensor>>;
    const dicts = new Map<string, Map<string, PthTensorToWrite>>();
    for (const [d, m] of obj) {
      const out = new Map<string, PthTensorToWrite>();
      for (const [k, v] of m) {
        const data =
          v.data instanceof Float32Array ? v.data : Float32Array.from(v.data as BigInt64Array, Number);
        out.set(k, { shape: v.shape, data });
      }
      dicts.set(d, out);
    }
    const again = readPth(writePth(dicts), 'rewritten', { flatten: true });
    const want = readPth(real, 'fixture', { flatten: true });
    expect([...again.keys()]).toEqual([...want.keys()]);
    for (const [k, w] of want) {
      const g = again.get(k)!;
      expect([g.dtype, g.shape]).toEqual([w.dtype, w.shape]);
      expect(g.data).toEqual(w.data);
    }
  });

  it('rejects bad input with clear errors', () => {
    const one = (x: PthTensorToWrite) => new Map([['proj', new Map([['w', x]])]]);
    expect(() => writePth(one({ shape: [2, 2], data: new Float32Array(3) }))).toThrow(
      /'proj.w': shape \[2,2\] needs 4 values, data has 3/,
    );
    expect(() => writePth(one({ shape: [-1], data: new Float32Array(0) }))).toThrow(/bad shape/);
    expect(() =>
      writePth(
        new Map([['bn', new Map([['a.num_batches_tracked', { shape: [2], data: new Float32Array(2) }]])]]),
      ),
    ).toThrow(/num_batches_tracked must hold one value/);
    expect(() => writePth(new Map(), 'a/b')).toThrow(/archive name/);
  });

  it('is read by Python (zipfile CRCs, alignment, pickle with torch stubs, numpy storages)', () => {
    const dicts = sample();
    // JSON has no NaN/Infinity: leave the special values out of this comparison
    dicts.get('proj')?.delete('special');
    const path = join(dir, 'python.pth');
    writeFileSync(path, writePth(dicts));
    const script = `
import json, pickle, pickletools, struct, sys, zipfile, collections
import numpy as np
path = sys.argv[1]
z = zipfile.ZipFile(path)
assert z.testzip() is None, 'bad CRC'
raw = open(path, 'rb').read()
align = {}
for i in z.infolist():
    assert i.compress_type == zipfile.ZIP_STORED
    nl, el = struct.unpack('<HH', raw[i.header_offset + 26:i.header_offset + 30])
    align[i.filename] = (i.header_offset + 30 + nl + el) % 64
root = z.namelist()[0].split('/')[0]
class Storage:
    def __init__(self, dtype): self.dtype = dtype
class Tensor:
    def __init__(self, storage, offset, size, stride, requires_grad, hooks):
        self.array = storage[offset:offset + int(np.prod(size))].reshape(size)
        self.stride = stride; self.requires_grad = requires_grad; self.hooks = hooks
def find(module, name):
    table = {('torch._utils', '_rebuild_tensor_v2'): Tensor, ('torch', 'FloatStorage'): Storage('<f4'),
             ('torch', 'LongStorage'): Storage('<i8'), ('collections', 'OrderedDict'): collections.OrderedDict}
    return table[(module, name)]
class U(pickle.Unpickler):
    def find_class(self, module, name): return find(module, name)
    def persistent_load(self, pid):
        kind, storage, key, location, numel = pid
        assert kind == 'storage' and location == 'cpu'
        a = np.frombuffer(z.read(root + '/data/' + key), dtype=storage.dtype)
        assert a.size == numel, (key, a.size, numel)
        return a
pkl = z.read(root + '/data.pkl')
ops = sorted({op.name for op, _, _ in pickletools.genops(pkl)})
obj = U(__import__('io').BytesIO(pkl)).load()
out = {}
for d, sd in obj.items():
    assert type(sd) is collections.OrderedDict
    out[d] = {}
    for k, t in sd.items():
        assert t.requires_grad is False and t.hooks == collections.OrderedDict()
        c = [int(np.prod(t.array.shape[i + 1:])) for i in range(t.array.ndim)]
        assert list(t.stride) == c, (k, t.stride, c)
        out[d][k] = [list(t.array.shape), str(t.array.dtype), t.array.reshape(-1)[:64].tolist()]
print(json.dumps({'dicts': out, 'names': z.namelist(), 'align': align, 'ops': ops, 'proto': pkl[1]}))
`;
    const res = JSON.parse(execFileSync('python3', ['-c', script, path], { encoding: 'utf8' })) as {
      dicts: Record<string, Record<string, [number[], string, number[]]>>;
      names: string[];
      align: Record<string, number>;
      ops: string[];
      proto: number;
    };
    expect(res.proto).toBe(2);
    expect(Object.values(res.align).every((a) => a === 0)).toBe(true);
    expect(Object.keys(res.align).length).toBe(res.names.length);
    // only opcodes that torch.save's protocol-2 state_dict pickles use (spec §3.2)
    const allowed =
      'PROTO GLOBAL EMPTY_TUPLE EMPTY_DICT MARK TUPLE TUPLE1 TUPLE2 TUPLE3 REDUCE SETITEMS BINUNICODE BININT1 BININT2 BININT BINPUT LONG_BINPUT BINGET LONG_BINGET BINPERSID NEWFALSE STOP';
    for (const op of res.ops) expect(allowed.split(' ')).toContain(op);
    expect(Object.keys(res.dicts)).toEqual(['proj', 'decoder', 'bn']);
    for (const [d, m] of dicts) {
      expect(Object.keys(res.dicts[d]!)).toEqual([...m.keys()]);
      for (const [k, w] of m) {
        const [shape, dtype, first] = res.dicts[d]![k]!;
        expect(shape).toEqual(w.shape);
        if (k.endsWith('num_batches_tracked')) {
          expect(dtype).toBe('int64');
          expect(first).toEqual([42]);
        } else {
          expect(dtype).toBe('float32');
          // JSON numbers are the float32 values widened to float64: exact comparison
          expect(first).toEqual(Array.from(w.data.subarray(0, 64)));
        }
      }
    }
  });
});
