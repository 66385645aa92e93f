/**
 * The .pth reader (src/engine/io/{zip,pickle,pth}.ts) against the PyTorch-written fixtures in
 * ../shared/fixtures/pth (made by make_pth.py with torch 1.13), plus synthetic files built here for what
 * those cannot show (zip64 records, legacy storage views, more dtypes, unaligned legacy storages).
 *
 * Expected float values are recomputed with the fixture formula (../shared/fixtures/golden/README.md):
 * float64 arithmetic exactly as numpy/torch did it, then rounded to float32 (`.float()`), so every
 * comparison is exact.
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PickleError, PickleGlobal, PickleObject, unpickle } from '../../src/engine/io/pickle.js';
import {
  flattenStateDicts,
  PthError,
  type PthTensor,
  readPth,
  readPthObject,
} from '../../src/engine/io/pth.js';
import { readZip, ZipError } from '../../src/engine/io/zip.js';
import { formulaTensor } from '../../src/model/init.js';
import { sharedPath } from '../helpers/fixtures.js';

const FILES = [
  'resnet18_stem_layer1.pth',
  'resnet18_stem_layer1_legacy.pth',
  'official_rdpp_checkpoint_subset.pth',
  'edge_cases.pth',
] as const;

function load(name: string): Uint8Array {
  return new Uint8Array(readFileSync(sharedPath('fixtures', 'pth', name)));
}

// ---------------------------------------------------------------------------------------------------
// Expected values: the fixtures' weight formula (golden README), as make_pth.py's `formula(...).float()`.
const formula = formulaTensor;

/** Exact equality of typed arrays, reporting the first mismatch. */
function expectExact(name: string, got: ArrayLike<number | bigint>, want: ArrayLike<number | bigint>) {
  expect(got.length, `${name}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) expect(got[i], `${name}[${i}]`).toBe(want[i]);
  }
}

/** Check a state_dict against the formula: floats exact, num_batches_tracked int64 zero. */
function expectFormulaStateDict(sd: Map<string, PthTensor>, prefix: string, shapes: [string, number[]][]) {
  expect([...sd.keys()]).toEqual(shapes.map(([k]) => k));
  for (const [key, shape] of shapes) {
    const t = sd.get(key)!;
    expect(t.shape, key).toEqual(shape);
    if (key.endsWith('num_batches_tracked')) {
      expect(t.dtype).toBe('I64');
      expect(t.data).toBeInstanceOf(BigInt64Array);
      expectExact(key, t.data as BigInt64Array, [0n]);
    } else {
      expect(t.dtype, key).toBe('F32');
      expect(t.data).toBeInstanceOf(Float32Array);
      expectExact(key, t.data as Float32Array, formula(prefix + key, shape));
    }
  }
}

const bnKeys = (p: string, c: number): [string, number[]][] => [
  [`${p}.weight`, [c]],
  [`${p}.bias`, [c]],
  [`${p}.running_mean`, [c]],
  [`${p}.running_var`, [c]],
  [`${p}.num_batches_tracked`, []],
];

/** torchvision ResNet-18 conv1/bn1/layer1 state_dict keys and shapes, in module order. */
const STEM: [string, number[]][] = [
  ['conv1.weight', [64, 3, 7, 7]],
  ...bnKeys('bn1', 64),
  ...[0, 1].flatMap((b): [string, number[]][] => [
    [`layer1.${b}.conv1.weight`, [64, 64, 3, 3]],
    ...bnKeys(`layer1.${b}.bn1`, 64),
    [`layer1.${b}.conv2.weight`, [64, 64, 3, 3]],
    ...bnKeys(`layer1.${b}.bn2`, 64),
  ]),
];

// ---------------------------------------------------------------------------------------------------

describe('pth fixtures: exact values', () => {
  it('zip-format ResNet-18 stem + layer1 (float32, int64 num_batches_tracked)', () => {
    const sd = readPth(load('resnet18_stem_layer1.pth'), 'resnet18_stem_layer1.pth');
    expectFormulaStateDict(sd, 'encoder.', STEM);
  });

  it('legacy-format file gives the same tensors', () => {
    const legacy = readPth(load('resnet18_stem_layer1_legacy.pth'), 'resnet18_stem_layer1_legacy.pth');
    expectFormulaStateDict(legacy, 'encoder.', STEM);
    const zip = readPth(load('resnet18_stem_layer1.pth'), 'resnet18_stem_layer1.pth');
    for (const [k, t] of zip) expect(legacy.get(k), k).toEqual(t);
  });

  it('official RD++ checkpoint layout {proj, decoder, bn}', () => {
    const src = 'official_rdpp_checkpoint_subset.pth';
    const bytes = load(src);
    const obj = readPthObject(bytes, src);
    expect(obj).toBeInstanceOf(Map);
    const top = obj as Map<string, unknown>;
    expect([...top.keys()]).toEqual(['proj', 'decoder', 'bn']);
    const parts: Record<string, [string, number[]][]> = {
      proj: [
        ['proj_a.proj.0.weight', [32, 64, 3, 3]],
        ['proj_a.proj.0.bias', [32]],
        ['proj_a.proj.3.weight', [16, 32, 3, 3]],
        ['proj_a.proj.3.bias', [16]],
        ['proj_a.proj.6.weight', [32, 16, 3, 3]],
        ['proj_a.proj.6.bias', [32]],
      ],
      decoder: [...bnKeys('layer1.0.bn1', 256), ['layer1.0.bn2.weight', [256]]],
      bn: [
        ...bnKeys('bn_layer.0.bn1', 512),
        ['bn_layer.0.bn2.weight', [512]],
        ['bn_layer.0.bn2.bias', [512]],
      ],
    };
    for (const [part, shapes] of Object.entries(parts)) {
      const sd = top.get(part) as Map<string, PthTensor>;
      expect(sd).toBeInstanceOf(Map);
      expectFormulaStateDict(sd, `${part}.`, shapes);
    }
    const flat = flattenStateDicts(obj, src);
    expect([...flat.keys()]).toEqual(
      Object.entries(parts).flatMap(([part, shapes]) => shapes.map(([k]) => `${part}.${k}`)),
    );
    expect(flat.get('proj.proj_a.proj.0.weight')).toBe(
      (top.get('proj') as Map<string, unknown>).get('proj_a.proj.0.weight'),
    );
    // readPth: strict by default (names the offending entry), flattening on request.
    expect(() => readPth(bytes, src)).toThrow(PthError);
    expect(() => readPth(bytes, src)).toThrow(
      /official_rdpp_checkpoint_subset\.pth: 'proj' is a dict.*flatten/,
    );
    const viaReadPth = readPth(bytes, src, { flatten: true });
    expect([...viaReadPth.keys()]).toEqual([...flat.keys()]);
  });

  it('edge cases: storage offsets, shared storage, transposed strides, float16, int64, 0-d, nesting', () => {
    const obj = readPthObject(load('edge_cases.pth'), 'edge_cases.pth') as Map<string, unknown>;
    const t = (k: string) => obj.get(k) as PthTensor;
    const arange = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

    expect(t('view_with_offset').shape).toEqual([12]);
    expectExact('view_with_offset', t('view_with_offset').data as Float32Array, arange(5, 17));

    // base = arange(24).reshape(4, 6); base.t()[i][j] = base[j][i] = 6j + i, written row-major.
    expect(t('transposed').shape).toEqual([6, 4]);
    const tr: number[] = [];
    for (let i = 0; i < 6; i++) for (let j = 0; j < 4; j++) tr.push(6 * j + i);
    expectExact('transposed', t('transposed').data as Float32Array, tr);

    expect(t('rows').shape).toEqual([2, 6]);
    expectExact('rows', t('rows').data as Float32Array, arange(6, 18));

    // float16 [0.5, -2, 65504, 1e-4]: 1e-4 rounds to the half 0x068E = 2^-14 · (1 + 654/1024).
    const h = t('half');
    expect(h.dtype).toBe('F16');
    expect(h.data).toBeInstanceOf(Float32Array);
    const tiny = 2 ** -14 * (1 + 654 / 1024);
    expect(Math.abs(tiny - 1e-4)).toBeLessThan(2 ** -25); // the nearest half to 1e-4
    expectExact('half', h.data as Float32Array, [0.5, -2, 65504, Math.fround(tiny)]);

    const i64 = t('int64');
    expect(i64.dtype).toBe('I64');
    expect(i64.shape).toEqual([3]);
    expectExact('int64', i64.data as BigInt64Array, [7n, -3n, 2n ** 40n]);

    const s = t('scalar');
    expect(s.shape).toEqual([]);
    expect(s.dtype).toBe('F32');
    expectExact('scalar', s.data as Float32Array, [3.25]);

    const nested = obj.get('nested') as Map<string, unknown>;
    expect(nested).toBeInstanceOf(Map);
    const a = nested.get('a') as PthTensor;
    expect(a.shape).toEqual([2, 2]);
    expectExact('nested.a', a.data as Float32Array, [1, 1, 1, 1]);
    const b = nested.get('b') as PthTensor[];
    expect(Array.isArray(b)).toBe(true);
    expect(b[0]!.shape).toEqual([3]);
    expectExact('nested.b[0]', b[0]!.data as Float32Array, [0, 0, 0]);

    const flat = flattenStateDicts(obj);
    expect([...flat.keys()]).toEqual([
      'view_with_offset',
      'transposed',
      'rows',
      'half',
      'int64',
      'scalar',
      'nested.a',
      'nested.b.0',
    ]);
    // Materialised data never aliases another tensor's (shared storage is copied per view).
    (t('rows').data as Float32Array)[0] = -1;
    expect((t('view_with_offset').data as Float32Array)[1]).toBe(6);
  });
});

// ---------------------------------------------------------------------------------------------------

/** Expect a PthError whose message names the file (and matches `what`, if given). */
function expectPthError(f: () => unknown, source: string, what?: RegExp) {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a PthError for ${source}`).toBeInstanceOf(PthError);
  const msg = (err as Error).message;
  expect(msg).toContain(source);
  if (what) expect(msg).toMatch(what);
}

function indexOf(hay: Uint8Array, needle: number[] | string, from = 0): number {
  const n = typeof needle === 'string' ? Array.from(needle, (c) => c.charCodeAt(0)) : needle;
  outer: for (let i = from; i + n.length <= hay.length; i++) {
    for (let j = 0; j < n.length; j++) if (hay[i + j] !== n[j]) continue outer;
    return i;
  }
  return -1;
}

/** Replace every occurrence of `from` by `to` (same length). */
function patchAll(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const out = bytes.slice();
  let count = 0;
  for (let i = indexOf(out, from); i >= 0; i = indexOf(out, from, i + 1)) {
    out.set(
      Array.from(to, (c) => c.charCodeAt(0)),
      i,
    );
    count++;
  }
  expect(count, `pattern '${from}'`).toBeGreaterThan(0);
  return out;
}

/** Patch bytes inside edge_cases.pth's data.pkl (located through the zip reader), at a byte pattern. */
function patchPickle(pattern: number[], at: number, value: number): Uint8Array {
  const bytes = load('edge_cases.pth');
  const zip = readZip(bytes, 'edge_cases.pth');
  const pkl = zip.get('edge_cases/data.pkl')!;
  const i = indexOf(zip.read(pkl), pattern);
  expect(i, `pattern ${pattern}`).toBeGreaterThanOrEqual(0);
  expect(indexOf(zip.read(pkl), pattern, i + 1), 'pattern must be unique').toBe(-1);
  const out = bytes.slice();
  out[pkl.dataOffset + i + at] = value;
  return out;
}

describe('pth: malformed input gives PthError naming the file, never a partial result', () => {
  for (const name of FILES) {
    it(`${name} truncated at several points`, () => {
      const bytes = load(name);
      const cuts = [0, 1, 4, 15, 21, 100, 137, 2000, 2900, 3400, 4000]
        .concat([0.25, 0.5, 0.75, 0.99].map((f) => Math.floor(bytes.length * f)))
        .concat([bytes.length - 100, bytes.length - 22, bytes.length - 8, bytes.length - 1])
        .filter((c) => c >= 0 && c < bytes.length);
      for (const cut of cuts) expectPthError(() => readPthObject(bytes.subarray(0, cut), name), name);
    });
  }

  it('bad magic: zip and legacy', () => {
    const zip = load('resnet18_stem_layer1.pth').slice();
    zip[0] = 0x51;
    expectPthError(() => readPth(zip, 'flipped.pth'), 'flipped.pth', /not a PyTorch checkpoint/);
    const legacy = load('resnet18_stem_layer1_legacy.pth').slice();
    legacy[5] = legacy[5]! ^ 0xff; // inside the LONG1 magic number
    expectPthError(() => readPth(legacy, 'legacy.pth'), 'legacy.pth', /bad magic number/);
    expectPthError(() => readPth(new Uint8Array(0), 'empty.pth'), 'empty.pth', /empty file/);
    const text = new TextEncoder().encode('hello, world');
    expectPthError(() => readPth(text, 'text.pth'), 'text.pth', /not a PyTorch checkpoint/);
  });

  it('unknown opcode', () => {
    // Make the final STOP of data.pkl an unassigned opcode (0xff).
    const bytes = load('edge_cases.pth');
    const zip = readZip(bytes, 'x');
    const pkl = zip.get('edge_cases/data.pkl')!;
    const out = bytes.slice();
    out[pkl.dataOffset + pkl.size - 1] = 0xff;
    expectPthError(() => readPthObject(out, 'edge_cases.pth'), 'edge_cases.pth', /0xff.*unknown/);
  });

  it('unknown storage type', () => {
    const bad = patchAll(load('edge_cases.pth'), 'torch\nHalfStorage', 'torch\nHalfStorbge');
    expectPthError(
      () => readPthObject(bad, 'edge_cases.pth'),
      'edge_cases.pth',
      /unknown storage type torch\.HalfStorbge/,
    );
  });

  it('storage key missing from the archive', () => {
    const bad = patchAll(load('edge_cases.pth'), 'edge_cases/data/5', 'edge_cases/data/X');
    expectPthError(
      () => readPthObject(bad, 'edge_cases.pth'),
      'edge_cases.pth',
      /storage key '5' is missing/,
    );
  });

  it('storage offset out of range (and the last valid offset)', () => {
    // view_with_offset: BINPERSID, BININT1 5 (offset), BININT1 12, TUPLE1; storage '0' has 24 elements.
    const pattern = [0x51, 0x4b, 5, 0x4b, 12, 0x85];
    const ok = readPthObject(patchPickle(pattern, 2, 12), 'edge_cases.pth') as Map<string, PthTensor>;
    expectExact(
      'offset 12',
      ok.get('view_with_offset')!.data as Float32Array,
      [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23],
    );
    expectPthError(
      () => readPthObject(patchPickle(pattern, 2, 13), 'edge_cases.pth'),
      'edge_cases.pth',
      /shape \[12\] at storage offset 13 .* reaches element 24 of storage '0', which has 24 elements/,
    );
    expectPthError(
      () => readPthObject(patchPickle(pattern, 2, 20), 'edge_cases.pth'),
      'edge_cases.pth',
      /reaches element 31/,
    );
  });

  it('stride out of range', () => {
    // transposed: stride tuple (1, 6) → (1, 7): last element 5·1 + 3·7 = 26 ≥ 24.
    const bad = patchPickle([0x4b, 1, 0x4b, 6, 0x86], 3, 7);
    expectPthError(() => readPthObject(bad, 'edge_cases.pth'), 'edge_cases.pth', /reaches element 26/);
  });

  it('legacy: element count that disagrees with the persistent id', () => {
    const bytes = load('resnet18_stem_layer1_legacy.pth').slice();
    // The first storage record follows the key-list pickle: int64 count 36864 (0x9000).
    const at = indexOf(bytes, [0x2e, 0x00, 0x90, 0, 0, 0, 0, 0, 0], 3000) + 1;
    expect(at).toBe(3375);
    bytes[at + 1] = 0x91;
    expectPthError(
      () => readPth(bytes, 'legacy.pth'),
      'legacy.pth',
      /holds 37120 elements in the file, but 36864/,
    );
  });

  it('non-dict checkpoint and non-tensor values', () => {
    const pk = new PickleWriter().proto().int(5).stop().bytes();
    const file = legacyFile(pk, [], []);
    expectPthError(() => readPth(file, 'int.pth'), 'int.pth', /holds a number, not a dict/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Synthetic files: a small pickle writer, a legacy container and a zip writer (with zip64 records).

class PickleWriter {
  private out: number[] = [];
  private op(...b: number[]) {
    this.out.push(...b);
    return this;
  }
  proto() {
    return this.op(0x80, 2);
  }
  mark() {
    return this.op(0x28);
  }
  stop() {
    return this.op(0x2e);
  }
  none() {
    return this.op(0x4e);
  }
  bool(v: boolean) {
    return this.op(v ? 0x88 : 0x89);
  }
  int(v: number) {
    if (v >= 0 && v < 256) return this.op(0x4b, v);
    if (v >= 0 && v < 65536) return this.op(0x4d, v & 0xff, v >> 8);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    return this.op(0x4a, ...b);
  }
  long1(v: bigint) {
    const bytes: number[] = [];
    let x = v;
    do {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
    } while (
      !(x === 0n && (bytes[bytes.length - 1]! & 0x80) === 0) &&
      !(x === -1n && bytes[bytes.length - 1]! & 0x80)
    );
    return this.op(0x8a, bytes.length, ...bytes);
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, b.length, true);
    return this.op(0x58, ...n, ...b);
  }
  global(module: string, name: string) {
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }
  tuple(items: number[]) {
    this.mark();
    for (const v of items) this.int(v);
    return this.op(0x74);
  }
  emptyDict() {
    return this.op(0x7d);
  }
  emptyList() {
    return this.op(0x5d);
  }
  setitems() {
    return this.op(0x75);
  }
  appends() {
    return this.op(0x65);
  }
  raw(...b: number[]) {
    return this.op(...b);
  }
  /** _rebuild_tensor_v2(persid(storage tuple), offset, size, stride, False, OrderedDict()). */
  tensor(
    storageType: string,
    key: string,
    numel: number,
    offset: number,
    size: number[],
    stride: number[],
    legacyView?: [string, number, number] | null,
  ) {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', storageType).str(key).str('cpu').int(numel);
    if (legacyView === null) this.none();
    else if (legacyView) this.mark().str(legacyView[0]).int(legacyView[1]).int(legacyView[2]).op(0x74);
    this.op(0x74, 0x51).int(offset).tuple(size).tuple(stride).bool(false);
    this.global('collections', 'OrderedDict').op(0x29, 0x52);
    return this.op(0x74, 0x52);
  }
  bytes() {
    return Uint8Array.from(this.out);
  }
}

interface SynthTensor {
  name: string;
  type: string;
  key: string;
  numel: number;
  offset: number;
  size: number[];
  stride: number[];
  view?: [string, number, number];
}

/** A state_dict pickle (plain dict) of the given tensors. */
function stateDictPickle(ts: SynthTensor[], legacy: boolean): Uint8Array {
  const w = new PickleWriter().proto().emptyDict().mark();
  for (const t of ts)
    w.str(t.name).tensor(
      t.type,
      t.key,
      t.numel,
      t.offset,
      t.size,
      t.stride,
      legacy ? (t.view ?? null) : undefined,
    );
  return w.setitems().stop().bytes();
}

/** The legacy container: magic, 1001, sys info, the object pickle, the key list, then the storages. */
function legacyFile(main: Uint8Array, keys: string[], storages: Uint8Array[], counts?: number[]): Uint8Array {
  const magic = new PickleWriter().proto().long1(0x1950a86a20f9469cfc6cn).stop().bytes();
  const version = new PickleWriter().proto().int(1001).stop().bytes();
  const info = new PickleWriter().proto().emptyDict().mark().str('protocol_version').int(1001);
  info.str('little_endian').bool(true).setitems().stop();
  const list = new PickleWriter().proto().emptyList().mark();
  for (const k of keys) list.str(k);
  list.appends().stop();
  const parts: Uint8Array[] = [magic, version, info.bytes(), main, list.bytes()];
  storages.forEach((s, i) => {
    const c = new Uint8Array(8);
    new DataView(c.buffer).setBigInt64(0, BigInt(counts?.[i] ?? 0), true);
    parts.push(c, s);
  });
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * A stored zip the way PyTorch writes it (bit 3 set, zero sizes in local headers, local extra padded so
 * payloads start at multiples of 64), optionally with zip64 extra fields and zip64 end records.
 */
function zipFile(entries: [string, Uint8Array, number?][], zip64: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let off = 0;
  for (const [name, data, method = 0] of entries) {
    const nm = new TextEncoder().encode(name);
    const pad = (64 - ((off + 30 + nm.length + 4) % 64)) % 64;
    const local = new Uint8Array(30 + nm.length + 4 + pad);
    const l = new DataView(local.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(6, 0x0808, true);
    l.setUint16(8, method, true);
    l.setUint16(26, nm.length, true);
    l.setUint16(28, 4 + pad, true);
    local.set(nm, 30);
    l.setUint16(30 + nm.length, 0x4246, true); // "FB" padding tag
    l.setUint16(32 + nm.length, pad, true);
    const extra = zip64 ? 4 + 24 : 0;
    const c = new Uint8Array(46 + nm.length + extra);
    const cd = new DataView(c.buffer);
    cd.setUint32(0, 0x02014b50, true);
    cd.setUint16(8, 0x0808, true);
    cd.setUint16(10, method, true);
    cd.setUint32(20, zip64 ? 0xffffffff : data.length, true);
    cd.setUint32(24, zip64 ? 0xffffffff : data.length, true);
    cd.setUint16(28, nm.length, true);
    cd.setUint16(30, extra, true);
    cd.setUint32(42, zip64 ? 0xffffffff : off, true);
    c.set(nm, 46);
    if (zip64) {
      const e = 46 + nm.length;
      cd.setUint16(e, 1, true);
      cd.setUint16(e + 2, 24, true);
      cd.setBigUint64(e + 4, BigInt(data.length), true);
      cd.setBigUint64(e + 12, BigInt(data.length), true);
      cd.setBigUint64(e + 20, BigInt(off), true);
    }
    central.push(c);
    parts.push(local, data, new Uint8Array(16)); // data descriptor
    off += local.length + data.length + 16;
  }
  const cdBytes = concat(central);
  const cdOffset = off;
  const tail: Uint8Array[] = [cdBytes];
  if (zip64) {
    const z = new Uint8Array(56);
    const zd = new DataView(z.buffer);
    zd.setUint32(0, 0x06064b50, true);
    zd.setBigUint64(4, 44n, true);
    zd.setBigUint64(24, BigInt(entries.length), true);
    zd.setBigUint64(32, BigInt(entries.length), true);
    zd.setBigUint64(40, BigInt(cdBytes.length), true);
    zd.setBigUint64(48, BigInt(cdOffset), true);
    const loc = new Uint8Array(20);
    const ld = new DataView(loc.buffer);
    ld.setUint32(0, 0x07064b50, true);
    ld.setBigUint64(8, BigInt(cdOffset + cdBytes.length), true);
    ld.setUint32(16, 1, true);
    tail.push(z, loc);
  }
  const eocd = new Uint8Array(22);
  const ed = new DataView(eocd.buffer);
  ed.setUint32(0, 0x06054b50, true);
  ed.setUint16(8, zip64 ? 0xffff : entries.length, true);
  ed.setUint16(10, zip64 ? 0xffff : entries.length, true);
  ed.setUint32(12, zip64 ? 0xffffffff : cdBytes.length, true);
  ed.setUint32(16, zip64 ? 0xffffffff : cdOffset, true);
  tail.push(eocd);
  return concat([...parts, ...tail]);
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

describe('zip reader', () => {
  for (const zip64 of [false, true]) {
    it(`stored entries via the central directory${zip64 ? ' (zip64 records and extra fields)' : ''}`, () => {
      const a = Uint8Array.from({ length: 100 }, (_, i) => i);
      const b = new TextEncoder().encode('3\n');
      const file = zipFile(
        [
          ['root/data/0', a],
          ['root/version', b],
          ['root/deflated', new Uint8Array(5), 8],
        ],
        zip64,
      );
      const zip = readZip(file, 'synthetic.zip');
      expect([...zip.entries.keys()]).toEqual(['root/data/0', 'root/version', 'root/deflated']);
      const e = zip.get('root/data/0')!;
      expect(e.dataOffset % 64).toBe(0);
      expect(e.size).toBe(100);
      expectExact('data/0', zip.read(e), a);
      expectExact('version', zip.read('root/version'), b);
      expect(zip.findBySuffix('/version').map((x) => x.name)).toEqual(['root/version']);
      expect(() => zip.read('root/deflated')).toThrow(ZipError);
      expect(() => zip.read('root/deflated')).toThrow(
        /synthetic\.zip: entry 'root\/deflated' is compressed \(method 8, deflate\)/,
      );
    });
  }

  it('torch-style checkpoint through zip64 records', () => {
    const w = new Float32Array([1.5, -2.25, 3, 4.125, 5, 6]);
    const pk = stateDictPickle(
      [
        { name: 'w', type: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] },
        { name: 'wt', type: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [3, 2], stride: [1, 3] },
      ],
      false,
    );
    const file = zipFile(
      [
        ['ckpt/data.pkl', pk],
        ['ckpt/byteorder', new TextEncoder().encode('little')],
        ['ckpt/data/0', bytesOf(w)],
        ['ckpt/version', new TextEncoder().encode('3\n')],
      ],
      true,
    );
    const sd = readPth(file, 'z64.pth');
    expectExact('w', sd.get('w')!.data as Float32Array, w);
    expectExact('wt', sd.get('wt')!.data as Float32Array, [1.5, 4.125, -2.25, 5, 3, 6]);
    const big = zipFile(
      [
        ['ckpt/data.pkl', pk],
        ['ckpt/byteorder', new TextEncoder().encode('big')],
        ['ckpt/data/0', bytesOf(w)],
      ],
      false,
    );
    expectPthError(() => readPth(big, 'big.pth'), 'big.pth', /byte order 'big'/);
  });
});

describe('legacy container, synthetic', () => {
  it('all storage types, legacy storage views, odd alignment, strided/expanded/empty tensors', () => {
    const f64 = new Float64Array([0.1, -1e300, 2 ** -1074, 7]);
    const i32 = new Int32Array([-(2 ** 31), 2 ** 31 - 1, 5]);
    const i16 = new Int16Array([-32768, 32767]);
    const i8 = new Int8Array([-128, 127, -1]);
    const u8 = new Uint8Array([0, 255, 9]);
    const bool = new Uint8Array([1, 0, 1]);
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x7f80, 0x0001]); // 1, -3, +inf, smallest subnormal
    const f32 = Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
    const i64 = new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]);
    const ts: SynthTensor[] = [
      { name: 'f64', type: 'DoubleStorage', key: 'a', numel: 4, offset: 0, size: [4], stride: [1] },
      { name: 'i32', type: 'IntStorage', key: 'b', numel: 3, offset: 0, size: [3], stride: [1] },
      { name: 'i16', type: 'ShortStorage', key: 'c', numel: 2, offset: 0, size: [2], stride: [1] },
      { name: 'i8', type: 'CharStorage', key: 'd', numel: 3, offset: 0, size: [3], stride: [1] },
      { name: 'u8', type: 'ByteStorage', key: 'e', numel: 3, offset: 0, size: [3], stride: [1] },
      { name: 'bool', type: 'BoolStorage', key: 'f', numel: 3, offset: 0, size: [3], stride: [1] },
      { name: 'bf16', type: 'BFloat16Storage', key: 'g', numel: 4, offset: 0, size: [2, 2], stride: [2, 1] },
      // 3-D permuted view of f32 (shape [2,3,4] stored as [4,3,2]) with an extra size-1 dim.
      {
        name: 'perm',
        type: 'FloatStorage',
        key: 'h',
        numel: 24,
        offset: 0,
        size: [2, 1, 3, 4],
        stride: [1, 99, 2, 6],
      },
      // Expanded (stride 0) rows from offset 7.
      { name: 'expand', type: 'FloatStorage', key: 'h', numel: 24, offset: 7, size: [3, 2], stride: [0, 1] },
      { name: 'empty', type: 'FloatStorage', key: 'h', numel: 24, offset: 24, size: [0, 5], stride: [5, 1] },
      // A legacy storage view: elements 10..19 of root 'h' named 'hv'; the tensor reads 3 from offset 2.
      {
        name: 'view',
        type: 'FloatStorage',
        key: 'h',
        numel: 24,
        offset: 2,
        size: [3],
        stride: [1],
        view: ['hv', 10, 10],
      },
      { name: 'i64', type: 'LongStorage', key: 'i', numel: 2, offset: 1, size: [], stride: [] },
    ];
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];
    const data = [f64, i32, i16, i8, u8, bool, bf16, f32, i64].map(bytesOf);
    const counts = [4, 3, 2, 3, 3, 3, 4, 24, 2];
    const file = legacyFile(stateDictPickle(ts, true), keys, data, counts);
    const sd = readPth(file, 'synthetic_legacy.pth');
    expect([...sd.keys()]).toEqual(ts.map((t) => t.name));
    const got = (k: string) => sd.get(k)!;
    expect(got('f64').data).toBeInstanceOf(Float64Array);
    expectExact('f64', got('f64').data as Float64Array, f64);
    expect(got('i32').data).toBeInstanceOf(Int32Array);
    expectExact('i32', got('i32').data as Int32Array, i32);
    expect(got('i16').dtype).toBe('I16');
    expectExact('i16', got('i16').data as Int16Array, i16);
    expect(got('i8').data).toBeInstanceOf(Int8Array);
    expectExact('i8', got('i8').data as Int8Array, i8);
    expect(got('u8').data).toBeInstanceOf(Uint8Array);
    expectExact('u8', got('u8').data as Uint8Array, u8);
    expect(got('bool').dtype).toBe('BOOL');
    expectExact('bool', got('bool').data as Uint8Array, bool);
    expect(got('bf16').dtype).toBe('BF16');
    expect(got('bf16').data).toBeInstanceOf(Float32Array);
    expectExact('bf16', got('bf16').data as Float32Array, [
      1,
      -3,
      Number.POSITIVE_INFINITY,
      Math.fround(2 ** -133),
    ]);
    const perm: number[] = [];
    for (let a = 0; a < 2; a++)
      for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) perm.push(f32[a + 2 * b + 6 * c]!);
    expect(got('perm').shape).toEqual([2, 1, 3, 4]);
    expectExact('perm', got('perm').data as Float32Array, perm);
    expectExact('expand', got('expand').data as Float32Array, [
      f32[7]!,
      f32[8]!,
      f32[7]!,
      f32[8]!,
      f32[7]!,
      f32[8]!,
    ]);
    expect(got('empty').shape).toEqual([0, 5]);
    expect(got('empty').data.length).toBe(0);
    expectExact('view', got('view').data as Float32Array, [f32[12]!, f32[13]!, f32[14]!]);
    expect(got('i64').shape).toEqual([]);
    expectExact('i64', got('i64').data as BigInt64Array, [2n ** 63n - 1n]);
    // Results are fresh, aligned arrays even though legacy storages sit at odd file offsets.
    for (const t of sd.values()) expect(t.data.byteOffset).toBe(0);

    // Malformed variants of the same file.
    expectPthError(
      () =>
        readPth(legacyFile(stateDictPickle(ts, true), keys.slice(0, 8), data.slice(0, 8), counts), 'x.pth'),
      'x.pth',
      /storage key 'i' is missing from the file/,
    );
    expectPthError(
      () => readPth(legacyFile(stateDictPickle(ts, true), [...keys, 'zz'], data, counts), 'x.pth'),
      'x.pth',
      /truncated|'zz'/,
    );
    const badView = ts.map((t) =>
      t.name === 'view' ? { ...t, view: ['hv', 20, 10] as [string, number, number] } : t,
    );
    expectPthError(
      () => readPth(legacyFile(stateDictPickle(badView, true), keys, data, counts), 'x.pth'),
      'x.pth',
      /storage view 'hv' \(10 elements at 20\) exceeds storage 'h' \(24\)/,
    );
  });

  it('a 64 MB float32 state_dict at an odd offset parses without per-element work', () => {
    const n = 16 * 1024 * 1024;
    const big = new Float32Array(n);
    for (let i = 0; i < n; i += 4099) big[i] = i;
    const ts: SynthTensor[] = [
      {
        name: 'w',
        type: 'FloatStorage',
        key: '1',
        numel: n,
        offset: 0,
        size: [1024, 16384],
        stride: [16384, 1],
      },
    ];
    const file = legacyFile(stateDictPickle(ts, true), ['1'], [bytesOf(big)], [n]);
    const t0 = performance.now();
    const sd = readPth(file, 'big.pth');
    const ms = performance.now() - t0;
    const w = sd.get('w')!.data as Float32Array;
    expect(w.length).toBe(n);
    for (let i = 0; i < n; i += 4099) if (w[i] !== i) expect(w[i]).toBe(i);
    // A block copy takes tens of ms; a per-element DataView loop would be several times slower.
    expect(ms).toBeLessThan(1500);
  });
});

describe('pickle interpreter', () => {
  const run = (w: PickleWriter) => unpickle(w.bytes(), 0, { source: 'test.pkl' }).value;

  it('integers, floats, strings, containers, memo', () => {
    expect(
      run(
        new PickleWriter()
          .proto()
          .long1(-(2n ** 70n))
          .stop(),
      ),
    ).toBe(-(2n ** 70n));
    expect(run(new PickleWriter().proto().long1(-5n).stop())).toBe(-5);
    expect(run(new PickleWriter().proto().int(-7).stop())).toBe(-7);
    expect(run(new PickleWriter().proto().int(60000).stop())).toBe(60000);
    // BINFLOAT is big-endian.
    const f = new Uint8Array(8);
    new DataView(f.buffer).setFloat64(0, -0.3125, false);
    expect(
      run(
        new PickleWriter()
          .proto()
          .raw(0x47, ...f)
          .stop(),
      ),
    ).toBe(-0.3125);
    // Protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, BINGET, EMPTY_SET/ADDITEMS, TUPLE2.
    const s4 = new PickleWriter().raw(0x80, 4, 0x95, 20, 0, 0, 0, 0, 0, 0, 0);
    s4.raw(0x8c, 2, 0x68, 0x69, 0x94, 0x68, 0, 0x86).stop();
    expect(run(s4)).toEqual(['hi', 'hi']);
    const set = run(new PickleWriter().proto().raw(0x8f).mark().int(1).int(2).raw(0x90).stop());
    expect(set).toEqual(new Set([1, 2]));
    const list = run(new PickleWriter().proto().emptyList().mark().int(1).str('x').appends().stop());
    expect(list).toEqual([1, 'x']);
    const d = run(
      new PickleWriter().proto().emptyDict().mark().str('k').none().int(3).bool(true).setitems().stop(),
    );
    expect(d).toEqual(
      new Map<unknown, unknown>([
        ['k', null],
        [3, true],
      ]),
    );
  });

  it('opaque globals keep their name, arguments and BUILD state; hooks resolve others', () => {
    const w = new PickleWriter().proto().global('argparse', 'Namespace').raw(0x29, 0x52);
    w.emptyDict().mark().str('lr').int(3).setitems().raw(0x62).stop();
    const obj = run(w) as PickleObject;
    expect(obj).toBeInstanceOf(PickleObject);
    expect([obj.module, obj.name]).toEqual(['argparse', 'Namespace']);
    expect(obj.state).toEqual(new Map([['lr', 3]]));
    const g = unpickle(
      new PickleWriter().proto().global('m', 'f').tuple([2, 3]).raw(0x52).stop().bytes(),
      0,
      {
        findGlobal: (m, n) =>
          m === 'm' && n === 'f' ? (a) => (a[0] as number) * (a[1] as number) : undefined,
      },
    );
    expect(g.value).toBe(6);
    const glob = run(new PickleWriter().proto().global('torch', 'float32').stop());
    expect(glob).toBeInstanceOf(PickleGlobal);
  });

  it('errors name the source, the opcode and the byte', () => {
    expect(() => run(new PickleWriter().proto().raw(0xff))).toThrow(
      /test\.pkl: pickle opcode 0xff at byte 2: unknown/,
    );
    expect(() => run(new PickleWriter().proto().raw(0x85))).toThrow(/TUPLE1 at byte 2: stack underflow/);
    expect(() => run(new PickleWriter().proto().raw(0x68, 9))).toThrow(/BINGET at byte 2: memo key 9/);
    expect(() => run(new PickleWriter().proto().int(1))).toThrow(PickleError);
    expect(() => run(new PickleWriter().proto().raw(0x58, 10, 0, 0, 0, 65))).toThrow(
      /BINUNICODE.*unexpected end/,
    );
    expect(() => run(new PickleWriter().proto().raw(0x74))).toThrow(/no MARK/);
  });
});
