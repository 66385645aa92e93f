/**
 * Writing PyTorch checkpoints (`torch.save` zip format, spec §3.2) without Python, so that a model trained
 * here can go back to the official RD++ code, which saves and loads
 * `{'proj': proj_layer.state_dict(), 'decoder': decoder.state_dict(), 'bn': bn.state_dict()}`.
 *
 * The container mirrors what torch.save's writer (PyTorchStreamWriter on miniz) produces, checked byte by
 * byte against a real torch.save output (shared/fixtures/pth/official_rdpp_checkpoint_subset.pth):
 * - a stored (method 0) zip; every local header has general-purpose bits 3 (data descriptor) and 11
 *   (UTF-8 names), zero time/date, and zero CRC/sizes, which follow the payload in a data descriptor
 *   (`PK\x07\x08`, CRC-32, sizes); the central directory carries the real CRC/sizes and no extra field;
 * - every payload starts at a multiple of 64 bytes: the local extra field is an "FB" record (id 0x4246)
 *   padded with 'Z' bytes to the next 64-byte boundary, exactly like torch's getPadding;
 * - the end is a zip64 end-of-central-directory record, its locator and the classic end record (miniz
 *   always writes the zip64 trio);
 * - entries: `<archive>/data.pkl`, `<archive>/byteorder` ("little"), `<archive>/data/<key>` in torch's
 *   order (keys sorted as strings), `<archive>/version` ("3\n").
 *
 * The pickle (protocol 2) is the one Python's pickler writes for a dict of OrderedDicts of tensors:
 * `EMPTY_DICT MARK (name, OrderedDict) … SETITEMS`, each OrderedDict as `GLOBAL collections OrderedDict`,
 * EMPTY_TUPLE, REDUCE, then `MARK (key, tensor) … SETITEMS`; each tensor is REDUCE of
 * `GLOBAL torch._utils _rebuild_tensor_v2` on (storage, 0, size, contiguous stride, False, OrderedDict()),
 * the storage a BINPERSID of ('storage', GLOBAL torch FloatStorage, '<key>', 'cpu', numel). Repeated
 * objects (the globals, 'storage', 'cpu') are memoized and fetched again with BINGET, as Python does.
 * The state_dicts' `_metadata` attribute (module versions) is not written: load_state_dict treats a missing
 * one as version-less modules, which for BatchNorm only matters when num_batches_tracked is absent.
 *
 * `num_batches_tracked` is an int64 scalar in PyTorch: a name ending in it is written as a
 * `torch LongStorage` of one element with shape [] (the float value rounded). Every other tensor is float32.
 *
 * No Node API: maps in, bytes out. Archives are limited to 4 GiB minus a little (no zip64 extra fields).
 */

export interface PthTensorToWrite {
  shape: number[];
  data: Float32Array;
}

/** The CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  const t = crcTable();
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

let CRC_TABLE: Uint32Array | null = null;
function crcTable(): Uint32Array {
  if (CRC_TABLE) return CRC_TABLE;
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  CRC_TABLE = t;
  return t;
}

/** Growable byte buffer for the pickle. */
class Bytes {
  private buf = new Uint8Array(1024);
  length = 0;
  private ensure(n: number) {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }
  byte(...bs: number[]) {
    this.ensure(bs.length);
    for (const b of bs) this.buf[this.length++] = b;
  }
  u16(v: number) {
    this.byte(v & 0xff, (v >>> 8) & 0xff);
  }
  u32(v: number) {
    this.byte(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
  raw(b: Uint8Array) {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const utf8 = new TextEncoder();

/** Pickle protocol 2 writer for exactly the objects a state_dict checkpoint needs. */
class Pickler {
  readonly out = new Bytes();
  private memo = new Map<string, number>();

  private put(id: string) {
    const k = this.memo.size;
    this.memo.set(id, k);
    if (k < 256)
      this.out.byte(0x71, k); // BINPUT
    else {
      this.out.byte(0x72); // LONG_BINPUT
      this.out.u32(k);
    }
  }
  /** Push a memoized object again (BINGET / LONG_BINGET); false when it was never stored. */
  private get(id: string): boolean {
    const k = this.memo.get(id);
    if (k === undefined) return false;
    if (k < 256)
      this.out.byte(0x68, k); // BINGET
    else {
      this.out.byte(0x6a); // LONG_BINGET
      this.out.u32(k);
    }
    return true;
  }

  proto() {
    this.out.byte(0x80, 2);
  }
  stop() {
    this.out.byte(0x2e);
  }
  mark() {
    this.out.byte(0x28);
  }
  str(s: string, memoize = false) {
    if (memoize && this.get(`s:${s}`)) return;
    const b = utf8.encode(s);
    this.out.byte(0x58); // BINUNICODE
    this.out.u32(b.length);
    this.out.raw(b);
    if (memoize) this.put(`s:${s}`);
  }
  int(v: number) {
    if (!Number.isSafeInteger(v)) throw new Error(`pickle: ${v} is not a safe integer`);
    if (v >= 0 && v < 256)
      this.out.byte(0x4b, v); // BININT1
    else if (v >= 0 && v < 65536) {
      this.out.byte(0x4d); // BININT2
      this.out.u16(v);
    } else if (v >= -0x80000000 && v <= 0x7fffffff) {
      this.out.byte(0x4a); // BININT
      this.out.u32(v >>> 0);
    } else {
      // LONG1: little-endian two's complement, as short as possible
      let x = BigInt(v);
      const b: number[] = [];
      for (;;) {
        b.push(Number(x & 0xffn));
        x >>= 8n;
        const sign = b[b.length - 1]! & 0x80;
        if ((x === 0n && !sign) || (x === -1n && sign)) break;
      }
      this.out.byte(0x8a, b.length, ...b);
    }
  }
  global(module: string, name: string) {
    const id = `g:${module}\n${name}`;
    if (this.get(id)) return;
    this.out.byte(0x63); // GLOBAL
    this.out.raw(utf8.encode(`${module}\n${name}\n`));
    this.put(id);
  }
  intTuple(xs: number[]) {
    if (xs.length === 0) return this.out.byte(0x29); // EMPTY_TUPLE
    if (xs.length <= 3) {
      for (const x of xs) this.int(x);
      this.out.byte(0x84 + xs.length); // TUPLE1..TUPLE3
      return;
    }
    this.mark();
    for (const x of xs) this.int(x);
    this.out.byte(0x74); // TUPLE
  }
  /** `collections.OrderedDict()`: GLOBAL, EMPTY_TUPLE, REDUCE. */
  emptyOrderedDict() {
    this.global('collections', 'OrderedDict');
    this.out.byte(0x29, 0x52);
  }
  tensor(storageType: string, key: string, numel: number, shape: number[]) {
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.mark();
    // persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel)
    this.mark();
    this.str('storage', true);
    this.global('torch', storageType);
    this.str(key);
    this.str('cpu', true);
    this.int(numel);
    this.out.byte(0x74, 0x51); // TUPLE, BINPERSID
    this.int(0); // storage offset
    this.intTuple(shape);
    this.intTuple(contiguousStride(shape));
    this.out.byte(0x89); // NEWFALSE (requires_grad)
    this.emptyOrderedDict(); // backward hooks
    this.out.byte(0x74, 0x52); // TUPLE, REDUCE
  }
  setItemsStart() {
    this.mark();
  }
  setItemsEnd() {
    this.out.byte(0x75); // SETITEMS
  }
  emptyDict() {
    this.out.byte(0x7d);
  }
}

function contiguousStride(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

interface Record_ {
  name: string;
  data: Uint8Array;
}

/**
 * A PyTorch zip checkpoint holding `{name: OrderedDict(key → tensor)}` for each entry of `dicts`, in
 * order, as `torch.save` writes it. Tensors are float32 (little-endian), except names ending in
 * `num_batches_tracked`, which become int64 scalars. `archiveName` is the zip's top folder.
 */
export function writePth(
  dicts: Map<string, Map<string, PthTensorToWrite>>,
  archiveName = 'archive',
): Uint8Array {
  if (!archiveName || /[/\\]/.test(archiveName))
    throw new Error(`writePth: archive name '${archiveName}' must be a non-empty name without slashes`);
  const p = new Pickler();
  const storages: { key: string; bytes: Uint8Array }[] = [];
  p.proto();
  p.emptyDict();
  if (dicts.size) p.setItemsStart();
  for (const [dictName, tensors] of dicts) {
    p.str(dictName);
    p.emptyOrderedDict();
    if (tensors.size) p.setItemsStart();
    for (const [name, t] of tensors) {
      const where = `writePth: tensor '${dictName}.${name}'`;
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
        throw new Error(`${where}: bad shape ${JSON.stringify(t.shape)}`);
      if (!(t.data instanceof Float32Array)) throw new Error(`${where}: data is not a Float32Array`);
      const numel = t.shape.reduce((a, d) => a * d, 1);
      const key = String(storages.length);
      p.str(name);
      if (name.endsWith('num_batches_tracked')) {
        if (t.data.length !== 1)
          throw new Error(`${where}: num_batches_tracked must hold one value, found ${t.data.length}`);
        const v = Math.round(t.data[0]!);
        if (!Number.isSafeInteger(v)) throw new Error(`${where}: value ${t.data[0]} is not a count`);
        const b = new Uint8Array(8);
        new DataView(b.buffer).setBigInt64(0, BigInt(v), true);
        storages.push({ key, bytes: b });
        p.tensor('LongStorage', key, 1, []);
      } else {
        if (t.data.length !== numel)
          throw new Error(`${where}: shape [${t.shape}] needs ${numel} values, data has ${t.data.length}`);
        storages.push({ key, bytes: float32LE(t.data) });
        p.tensor('FloatStorage', key, numel, t.shape);
      }
    }
    if (tensors.size) p.setItemsEnd();
  }
  if (dicts.size) p.setItemsEnd();
  p.stop();

  const records: Record_[] = [
    { name: 'data.pkl', data: p.out.bytes() },
    { name: 'byteorder', data: utf8.encode('little') },
  ];
  // torch.save writes the storages in sorted key order ("0", "1", "10", "11", …, "2", …)
  const sorted = [...storages].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const s of sorted) records.push({ name: `data/${s.key}`, data: s.bytes });
  records.push({ name: 'version', data: utf8.encode('3\n') });
  return writeZip(records.map((r) => ({ name: `${archiveName}/${r.name}`, data: r.data })));
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** float32 values as little-endian bytes (a copy). */
function float32LE(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  const out = new Uint8Array(data.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i]!, true);
  return out;
}

const ALIGN = 64;
const FLAGS = 0x0808; // bit 3: sizes in a data descriptor; bit 11: UTF-8 names

/** A stored zip laid out like PyTorch's writer (see the header comment). */
function writeZip(records: Record_[]): Uint8Array {
  const names = records.map((r) => utf8.encode(r.name));
  // layout pass: offsets, paddings, CRCs
  const layout: { offset: number; pad: number; crc: number }[] = [];
  let pos = 0;
  for (let i = 0; i < records.length; i++) {
    const start = pos + 30 + names[i]!.length + 4;
    const pad = (ALIGN - (start % ALIGN)) % ALIGN;
    layout.push({ offset: pos, pad, crc: crc32(records[i]!.data) });
    pos = start + pad + records[i]!.data.length + 16;
  }
  const cdOffset = pos;
  const cdSize = names.reduce((a, n) => a + 46 + n.length, 0);
  const total = cdOffset + cdSize + 56 + 20 + 22;
  if (total > 0xfffffffe)
    throw new Error(`writePth: the archive would be ${total} bytes; more than 4 GiB needs zip64 entries`);

  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let p = 0;
  const u16 = (v: number) => {
    dv.setUint16(p, v, true);
    p += 2;
  };
  const u32 = (v: number) => {
    dv.setUint32(p, v >>> 0, true);
    p += 4;
  };
  const u64 = (v: number) => {
    dv.setBigUint64(p, BigInt(v), true);
    p += 8;
  };
  for (let i = 0; i < records.length; i++) {
    const { pad, crc } = layout[i]!;
    const name = names[i]!;
    const data = records[i]!.data;
    u32(0x04034b50);
    u16(0); // version needed (miniz writes 0)
    u16(FLAGS);
    u16(0); // method: stored
    u16(0); // time
    u16(0); // date
    u32(0); // crc (in the data descriptor)
    u32(0); // compressed size
    u32(0); // size
    u16(name.length);
    u16(pad + 4);
    out.set(name, p);
    p += name.length;
    u16(0x4246); // "FB"
    u16(pad);
    out.fill(0x5a, p, p + pad); // 'Z'
    p += pad;
    out.set(data, p);
    p += data.length;
    u32(0x08074b50); // data descriptor
    u32(crc);
    u32(data.length);
    u32(data.length);
  }
  for (let i = 0; i < records.length; i++) {
    const { offset, crc } = layout[i]!;
    const name = names[i]!;
    const n = records[i]!.data.length;
    u32(0x02014b50);
    u16(0); // version made by
    u16(0); // version needed
    u16(FLAGS);
    u16(0); // method
    u16(0); // time
    u16(0); // date
    u32(crc);
    u32(n);
    u32(n);
    u16(name.length);
    u16(0); // extra
    u16(0); // comment
    u16(0); // disk
    u16(0); // internal attributes
    u32(0); // external attributes
    u32(offset);
    out.set(name, p);
    p += name.length;
  }
  // zip64 end of central directory record, its locator, then the classic end record
  const zip64At = p;
  u32(0x06064b50);
  u64(44); // size of the rest of this record
  u16(0x031e); // version made by (as miniz)
  u16(0x002d); // version needed: 4.5
  u32(0); // this disk
  u32(0); // disk with the central directory
  u64(records.length);
  u64(records.length);
  u64(cdSize);
  u64(cdOffset);
  u32(0x07064b50);
  u32(0);
  u64(zip64At);
  u32(1); // total disks
  u32(0x06054b50);
  u16(0);
  u16(0);
  u16(Math.min(records.length, 0xffff));
  u16(Math.min(records.length, 0xffff));
  u32(cdSize);
  u32(cdOffset);
  u16(0); // comment length
  if (p !== total) throw new Error(`writePth: internal layout error (${p} vs ${total})`);
  return out;
}
