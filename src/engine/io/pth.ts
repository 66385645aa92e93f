/**
 * PyTorch checkpoints (`torch.save` files) read without Python (spec §3.2). Platform-neutral: bytes in.
 *
 * Two containers, told apart by the first bytes:
 * - zip ("PK\x03\x04", PyTorch ≥ 1.6): `<root>/data.pkl` is the pickle, `<root>/data/<key>` the raw
 *   little-endian storages (src/engine/io/zip.ts reads the archive);
 * - legacy (a pickle of the magic number 0x1950a86a20f9469cfc6c): five pickles in a row (magic, protocol
 *   version 1001, sys info, the object, the list of storage keys), then for each listed key an int64
 *   element count and the raw bytes.
 *
 * The object pickle (src/engine/io/pickle.ts) rebuilds tensors with `torch._utils._rebuild_tensor_v2`
 * (storage, storage_offset, size, stride, …); storages come from persistent ids ('storage', type, key,
 * location, numel[, view_metadata]). In the legacy format the storage bytes follow the pickle, so tensors
 * are created as empty shells during unpickling and filled in once every storage is bound.
 *
 * Materialisation: element (i0, i1, …) = storage[offset + Σ i_d·stride_d], written row-major. When the
 * view is contiguous the bytes are copied in one block into a fresh, aligned typed array (no per-element
 * JS work for float32/int64/…; float16 and bfloat16 go through a table / a shift to float32). Otherwise
 * the touched span is decoded once and gathered. Every bound is checked before anything is returned.
 */

import { describe, PickleError, PickleGlobal, unpickle } from './pickle.js';
import { halfToFloat } from './safetensors.js';
import { isZip, readZip, ZipError } from './zip.js';

export type PthDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type PthData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/**
 * A tensor read from a checkpoint: row-major data. F16 and BF16 are widened to Float32Array (`dtype`
 * keeps the stored type); BOOL and U8 are Uint8Array; I64 is BigInt64Array.
 */
export class PthTensor {
  constructor(
    readonly dtype: PthDType,
    readonly shape: number[],
    public data: PthData,
  ) {}
}

export class PthError extends Error {
  override name = 'PthError';
}

export function isPthTensor(v: unknown): v is PthTensor {
  return v instanceof PthTensor;
}

const STORAGE_DTYPES: Record<string, PthDType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const ELEMENT_BYTES: Record<PthDType, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** A storage named by a persistent id; `bytes` is bound when its data is found. */
class Storage {
  /** Raw bytes once bound (zip: at once; legacy: after the pickle). */
  bytes: Uint8Array | null = null;
  constructor(
    readonly key: string,
    readonly dtype: PthDType,
    /** Element count stated in the persistent id. */
    readonly numel: number,
    /** Legacy storage views: `numel` elements of `base` from element `baseOffset`. */
    readonly base?: Storage,
    readonly baseOffset = 0,
  ) {}
}

interface Pending {
  tensor: PthTensor;
  storage: Storage;
  offset: number;
  stride: number[];
}

/**
 * Read a checkpoint into its unpickled object: dicts (and OrderedDicts) become Maps, tuples and lists
 * arrays, tensors PthTensor; classes other than the torch rebuild functions stay opaque PickleObjects.
 */
export function readPthObject(bytes: Uint8Array, source: string): unknown {
  const fail = (msg: string): never => {
    throw new PthError(`${source}: ${msg}`);
  };
  try {
    return readObject(bytes, source, fail);
  } catch (e) {
    if (e instanceof PthError) throw e;
    if (e instanceof PickleError || e instanceof ZipError) {
      // Those messages already start with the source.
      throw new PthError(e.message, { cause: e });
    }
    // Anything else is a malformed input this reader did not anticipate: still a PthError.
    throw new PthError(`${source}: unreadable checkpoint (${(e as Error)?.name}: ${(e as Error)?.message})`, {
      cause: e,
    });
  }
}

/**
 * Read a plain state_dict (name → tensor). With `flatten`, nested dicts (e.g. the official RD++
 * checkpoint `{'proj': sd, 'decoder': sd, 'bn': sd}`) are flattened to 'proj.xxx' names.
 */
export function readPth(
  bytes: Uint8Array,
  source: string,
  opts: { flatten?: boolean } = {},
): Map<string, PthTensor> {
  const obj = readPthObject(bytes, source);
  if (opts.flatten) return flattenStateDicts(obj, source);
  if (!(obj instanceof Map))
    throw new PthError(`${source}: the checkpoint holds a ${describe(obj)}, not a dict`);
  const out = new Map<string, PthTensor>();
  for (const [k, v] of obj) {
    if (!(v instanceof PthTensor))
      throw new PthError(
        `${source}: '${String(k)}' is a ${describe(v)}, not a tensor (not a plain state_dict; ` +
          'read it with readPth(bytes, source, { flatten: true }) or readPthObject)',
      );
    out.set(String(k), v);
  }
  return out;
}

/**
 * Flatten nested dicts/lists of tensors into 'a.b.c' → tensor, in pickle order. Non-tensor leaves
 * (numbers, strings, None, opaque objects — e.g. an `epoch` entry) are skipped.
 */
export function flattenStateDicts(obj: unknown, source = 'checkpoint'): Map<string, PthTensor> {
  if (!(obj instanceof Map) && !Array.isArray(obj))
    throw new PthError(`${source}: cannot flatten a ${describe(obj)}; expected a dict of state_dicts`);
  const out = new Map<string, PthTensor>();
  const seen = new Set<unknown>();
  const walk = (v: unknown, name: string) => {
    if (v instanceof PthTensor) {
      if (out.has(name)) throw new PthError(`${source}: the name '${name}' occurs twice when flattened`);
      out.set(name, v);
      return;
    }
    if (!(v instanceof Map) && !Array.isArray(v)) return;
    if (seen.has(v)) return;
    seen.add(v);
    const entries: Iterable<[unknown, unknown]> = v instanceof Map ? v : v.entries();
    for (const [k, x] of entries) walk(x, name ? `${name}.${String(k)}` : String(k));
    seen.delete(v);
  };
  walk(obj, '');
  return out;
}

function readObject(bytes: Uint8Array, source: string, fail: (msg: string) => never): unknown {
  if (isZip(bytes)) return readZipCheckpoint(bytes, source, fail);
  if (bytes.length >= 2 && bytes[0] === 0x80) return readLegacyCheckpoint(bytes, source, fail);
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return fail(
    `not a PyTorch checkpoint: starts with ${head || '(empty file)'}, expected 50 4b 03 04 (zip) ` +
      'or 80 02 8a 0a (legacy pickle with the magic number)',
  );
}

/** The unpickler hooks shared by both containers: storages by key, torch globals, pending tensors. */
function makeReader(fail: (msg: string) => never) {
  const pending: Pending[] = [];
  const storages = new Map<string, Storage>();

  const storageFromPid = (pid: unknown, legacy: boolean): Storage => {
    if (!Array.isArray(pid)) return fail(`persistent id is a ${describe(pid)}, not a tuple`);
    if (pid[0] !== 'storage') return fail(`unsupported persistent id type '${String(pid[0])}'`);
    if (pid.length !== (legacy ? 6 : 5))
      return fail(`storage persistent id has ${pid.length} fields, expected ${legacy ? 6 : 5}`);
    const [, type, key, , numel] = pid as unknown[];
    if (!(type instanceof PickleGlobal) || (type.module !== 'torch' && type.module !== 'torch.cuda'))
      return fail(`unknown storage type ${describe(type)}`);
    const dtype = STORAGE_DTYPES[type.name];
    if (!dtype) return fail(`unknown storage type ${String(type)}`);
    if (typeof key !== 'string') return fail(`storage key is a ${describe(key)}, not a string`);
    if (!isCount(numel)) return fail(`storage '${key}': bad element count ${String(numel)}`);
    let s = storages.get(key);
    if (s) {
      if (s.dtype !== dtype || s.numel !== numel)
        return fail(`storage '${key}' is referenced as ${s.dtype}×${s.numel} and as ${dtype}×${numel}`);
    } else {
      s = new Storage(key, dtype, numel);
      storages.set(key, s);
    }
    const view = legacy ? (pid as unknown[])[5] : null;
    if (view === null || view === undefined) return s;
    // Legacy storage view: (view_key, offset, size) in elements of the root storage.
    if (!Array.isArray(view) || view.length !== 3) return fail(`storage '${key}': bad view metadata`);
    const [vkey, voff, vsize] = view as unknown[];
    if (typeof vkey !== 'string' || !isCount(voff) || !isCount(vsize))
      return fail(`storage '${key}': bad view metadata`);
    if (voff + vsize > numel)
      return fail(
        `storage view '${vkey}' (${vsize} elements at ${voff}) exceeds storage '${key}' (${numel})`,
      );
    const existing = storages.get(vkey);
    if (existing) return existing;
    const v = new Storage(vkey, dtype, vsize, s, voff);
    storages.set(vkey, v);
    return v;
  };

  const rebuild = (args: unknown[], what: string): PthTensor => {
    if (args.length < 4) return fail(`${what} needs at least 4 arguments, got ${args.length}`);
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof Storage))
      return fail(`${what}: first argument is a ${describe(storage)}, not a storage`);
    const s = storage;
    if (!isCount(offset)) return fail(`${what}: bad storage offset ${String(offset)}`);
    if (!Array.isArray(size) || !size.every(isCount))
      return fail(`${what}: bad size ${describe(size)} ${JSON.stringify(size)}`);
    if (!Array.isArray(stride) || !stride.every(isCount) || stride.length !== size.length)
      return fail(`${what}: bad stride ${JSON.stringify(stride)} for size [${size}]`);
    const shape = size as number[];
    const n = shape.reduce((a, d) => a * d, 1);
    if (n > 0) {
      let last = offset;
      for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * (stride[d] as number);
      if (last >= s.numel)
        fail(
          `tensor of shape [${shape}] at storage offset ${offset} with strides [${stride}] reaches element ` +
            `${last} of storage '${s.key}', which has ${s.numel} elements`,
        );
    }
    const t = new PthTensor(s.dtype, [...shape], EMPTY);
    pending.push({ tensor: t, storage: s, offset, stride: [...(stride as number[])] });
    return t;
  };

  const findGlobal = (module: string, name: string) => {
    if (module === 'collections' && name === 'OrderedDict')
      return (args: unknown[]) => {
        const m = new Map<unknown, unknown>();
        const items = args[0];
        if (Array.isArray(items))
          for (const kv of items) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
        return m;
      };
    if (module === 'torch._utils' && (name === '_rebuild_tensor_v2' || name === '_rebuild_tensor'))
      return (args: unknown[]) => rebuild(args, name);
    if (
      module === 'torch._utils' &&
      (name === '_rebuild_parameter' || name === '_rebuild_parameter_with_state')
    )
      return (args: unknown[]) => {
        if (!(args[0] instanceof PthTensor)) fail(`${name}: data is a ${describe(args[0])}, not a tensor`);
        return args[0];
      };
    if (module === 'torch._tensor' && name === '_rebuild_from_type_v2')
      return (args: unknown[]) => {
        const [fn, , fnArgs] = args;
        if (!(fn instanceof PickleGlobal) || !fn.call || !Array.isArray(fnArgs))
          return fail(`_rebuild_from_type_v2 of ${describe(fn)} is not supported`);
        return fn.call(fnArgs);
      };
    if (module === '_codecs' && name === 'encode')
      return (args: unknown[]) => {
        // Python 2-compatible pickles of bytes: _codecs.encode(str, 'latin1').
        const [s, enc] = args;
        if (typeof s !== 'string') return fail(`_codecs.encode of a ${describe(s)}`);
        if (enc === 'latin1' || enc === 'latin-1') return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
        return new TextEncoder().encode(s);
      };
    return undefined;
  };

  /** Fill every tensor's data; all storages must be bound by now. */
  const materialise = () => {
    for (const p of pending) p.tensor.data = materialiseOne(p, fail);
  };

  return { storages, storageFromPid, findGlobal, materialise };
}

function readZipCheckpoint(bytes: Uint8Array, source: string, fail: (msg: string) => never): unknown {
  const zip = readZip(bytes, source);
  const pkls = zip.findBySuffix('/data.pkl');
  if (pkls.length === 0) fail('no data.pkl entry in the zip archive (not a torch.save checkpoint?)');
  if (pkls.length > 1) fail(`several data.pkl entries: ${pkls.map((e) => e.name).join(', ')}`);
  const pkl = pkls[0]!;
  const root = pkl.name.slice(0, pkl.name.length - 'data.pkl'.length);
  const order = zip.get(`${root}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(zip.read(order)).trim();
    if (text !== 'little') fail(`byte order '${text}' is not supported (only little-endian checkpoints)`);
  }
  const r = makeReader(fail);
  const { value } = unpickle(zip.read(pkl), 0, {
    source: `${source} (${pkl.name})`,
    findGlobal: r.findGlobal,
    persistentLoad: (pid) => {
      const s = r.storageFromPid(pid, false);
      if (!s.bytes) {
        const name = `${root}data/${s.key}`;
        const e = zip.get(name);
        if (!e) return fail(`storage key '${s.key}' is missing from the archive (no entry '${name}')`);
        const b = zip.read(e);
        const want = s.numel * ELEMENT_BYTES[s.dtype];
        if (b.byteLength < want)
          fail(`storage '${s.key}' has ${b.byteLength} bytes, expected ${want} (${s.numel} × ${s.dtype})`);
        s.bytes = b.subarray(0, want);
      }
      return s;
    },
  });
  r.materialise();
  return value;
}

function readLegacyCheckpoint(bytes: Uint8Array, source: string, fail: (msg: string) => never): unknown {
  const magic = unpickle(bytes, 0, { source: `${source} (legacy magic number)` });
  if (magic.value !== LEGACY_MAGIC)
    fail(
      `bad magic number ${String(magic.value)}: not a PyTorch checkpoint ` +
        `(expected ${LEGACY_MAGIC} or a zip archive)`,
    );
  const proto = unpickle(bytes, magic.end, { source: `${source} (legacy protocol version)` });
  if (proto.value !== LEGACY_PROTOCOL) fail(`legacy protocol version ${String(proto.value)}, expected 1001`);
  const info = unpickle(bytes, proto.end, { source: `${source} (legacy sys info)` });
  if (!(info.value instanceof Map)) fail(`legacy sys info is a ${describe(info.value)}, not a dict`);
  if ((info.value as Map<unknown, unknown>).get('little_endian') !== true)
    fail('big-endian legacy checkpoints are not supported');

  const r = makeReader(fail);
  const main = unpickle(bytes, info.end, {
    source: `${source} (legacy object pickle)`,
    findGlobal: r.findGlobal,
    persistentLoad: (pid) => r.storageFromPid(pid, true),
  });
  const keys = unpickle(bytes, main.end, { source: `${source} (legacy storage key list)` });
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string'))
    fail(`legacy storage key list is a ${describe(keys.value)}, not a list of strings`);

  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const s = r.storages.get(key);
    if (!s) return fail(`storage '${key}' is listed in the file but no tensor uses it`);
    if (s.base) return fail(`storage '${key}' is listed but is a view of '${s.base.key}'`);
    if (pos + 8 > bytes.byteLength)
      return fail(
        `truncated: the element count of storage '${key}' would be at byte ${pos} of ${bytes.byteLength}`,
      );
    const count = dv.getBigInt64(pos, true);
    if (count !== BigInt(s.numel))
      return fail(
        `storage '${key}' holds ${count} elements in the file, but ${s.numel} in its persistent id`,
      );
    const nbytes = s.numel * ELEMENT_BYTES[s.dtype];
    if (pos + 8 + nbytes > bytes.byteLength)
      return fail(
        `truncated: storage '${key}' (${nbytes} bytes at byte ${pos + 8}) ends past the file end (${bytes.byteLength} bytes)`,
      );
    if (s.bytes) return fail(`storage '${key}' is listed twice`);
    s.bytes = bytes.subarray(pos + 8, pos + 8 + nbytes);
    pos += 8 + nbytes;
  }
  for (const s of r.storages.values())
    if (!s.base && !s.bytes)
      fail(`storage key '${s.key}' is missing from the file (not in the storage list)`);
  r.materialise();
  return main.value;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const EMPTY = new Float32Array(0);

function storageBytes(s: Storage): Uint8Array {
  if (s.base) {
    const es = ELEMENT_BYTES[s.dtype];
    return storageBytes(s.base).subarray(s.baseOffset * es, (s.baseOffset + s.numel) * es);
  }
  return s.bytes!;
}

function materialiseOne(p: Pending, fail: (msg: string) => never): PthData {
  const { tensor, storage, offset, stride } = p;
  const shape = tensor.shape;
  const n = shape.reduce((a, d) => a * d, 1);
  const es = ELEMENT_BYTES[tensor.dtype];
  const bytes = storageBytes(storage);
  if (bytes.byteLength < storage.numel * es) fail(`storage '${storage.key}' is shorter than stated`);
  if (n === 0) return decode(tensor.dtype, bytes, 0, 0);
  // Contiguous (row-major strides, ignoring size-1 dims): one block copy.
  let contiguous = true;
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    if (stride[d] !== expect) {
      contiguous = false;
      break;
    }
    expect *= shape[d]!;
  }
  if (contiguous) return decode(tensor.dtype, bytes, offset * es, n);
  // Strided: decode the touched span once, then gather row-major.
  let last = offset;
  for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * stride[d]!;
  const src = decode(tensor.dtype, bytes, offset * es, last - offset + 1);
  const out = alloc(src, n);
  gather(src, out, shape, stride);
  return out;
}

function alloc(like: PthData, n: number): PthData {
  return new (like.constructor as new (n: number) => PthData)(n);
}

/** out[row-major i] = src[Σ i_d·stride_d]; the innermost dimension is a tight loop. */
function gather(src: PthData, out: PthData, shape: number[], stride: number[]) {
  const rank = shape.length;
  const inner = shape[rank - 1]!;
  const innerStride = stride[rank - 1]!;
  const idx = new Array<number>(rank).fill(0);
  const s = src as unknown as { [i: number]: number | bigint };
  const o = out as unknown as { [i: number]: number | bigint };
  let base = 0;
  let w = 0;
  const n = out.length;
  while (w < n) {
    for (let j = 0, q = base; j < inner; j++, q += innerStride) o[w++] = s[q]!;
    // Advance the outer index (dims 0..rank-2), odometer style.
    let d = rank - 2;
    for (; d >= 0; d--) {
      idx[d]!++;
      base += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= idx[d]! * stride[d]!;
      idx[d] = 0;
    }
    if (d < 0) break;
  }
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let halfTable: Float32Array | null = null;

/** `n` elements of `dtype` starting at byte `off` → a fresh typed array (F16/BF16 widened to float32). */
function decode(dtype: PthDType, bytes: Uint8Array, off: number, n: number): PthData {
  const es = ELEMENT_BYTES[dtype];
  // slice() copies into a new, 0-aligned ArrayBuffer: one memcpy, whatever the file alignment.
  const buf = bytes.slice(off, off + n * es).buffer;
  if (!LITTLE_ENDIAN_HOST && es > 1) swapBytes(new Uint8Array(buf), es);
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F64':
      return new Float64Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf);
    case 'F16': {
      if (!halfTable) {
        halfTable = new Float32Array(65536);
        for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
      }
      const h = new Uint16Array(buf);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfTable[h[i]!]!;
      return out;
    }
    case 'BF16': {
      const h = new Uint16Array(buf);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = h[i]! << 16;
      return new Float32Array(bits.buffer);
    }
  }
}

function swapBytes(b: Uint8Array, es: number) {
  for (let i = 0; i < b.length; i += es) b.subarray(i, i + es).reverse();
}
