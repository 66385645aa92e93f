/**
 * A minimal zip reader for PyTorch checkpoints (spec §3.2): stored (method 0) entries only, located
 * through the central directory, with zip64 end records and zip64 extra fields.
 *
 * Why the central directory and not the local headers: PyTorch writes every entry with general-purpose
 * bit 3 (data descriptor) set, so the local headers carry zero sizes and CRCs; the real sizes live in the
 * central directory at the end of the file. The payload offset, however, must come from the LOCAL header
 * (local_header_offset + 30 + name_len + local_extra_len): PyTorch pads the local extra field so that each
 * payload starts at a multiple of 64 bytes, and the central directory's extra length differs.
 *
 * Deflate-compressed entries (method 8) are reported as an error: PyTorch never compresses, and inflate
 * is not available platform-neutrally without adding a decompressor. CRCs are not verified.
 *
 * No Node API: bytes in, views of those bytes out.
 */

export class ZipError extends Error {
  override name = 'ZipError';
}

export interface ZipEntry {
  /** Full entry name, e.g. "archive/data/0". */
  name: string;
  /** Compression method: 0 = stored. */
  method: number;
  /** Uncompressed size in bytes (from the central directory). */
  size: number;
  /** Compressed size in bytes (from the central directory). */
  compressedSize: number;
  /** Offset of the entry's payload in the file (from the local header). */
  dataOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

/** True when the bytes start with a local file header signature ("PK\x03\x04"). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 && bytes[3] === 4;
}

export class ZipArchive {
  constructor(
    readonly bytes: Uint8Array,
    readonly source: string,
    /** Entries in central-directory order, by name. */
    readonly entries: Map<string, ZipEntry>,
  ) {}

  /** The entry whose name is exactly `name`, or undefined. */
  get(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /** Entries whose names end with `suffix` (e.g. "/data.pkl"). */
  findBySuffix(suffix: string): ZipEntry[] {
    const bare = suffix.startsWith('/') ? suffix.slice(1) : suffix;
    const out: ZipEntry[] = [];
    for (const [name, e] of this.entries) if (name === bare || name.endsWith(suffix)) out.push(e);
    return out;
  }

  /** The payload of a stored entry: a view into the archive's bytes (no copy). */
  read(entry: ZipEntry | string): Uint8Array {
    const e = typeof entry === 'string' ? this.entries.get(entry) : entry;
    if (!e) throw new ZipError(`${this.source}: no entry '${entry as string}' in the zip archive`);
    if (e.method !== 0)
      throw new ZipError(
        `${this.source}: entry '${e.name}' is compressed (method ${e.method}${e.method === 8 ? ', deflate' : ''}); ` +
          'only stored (uncompressed) entries are supported, as PyTorch writes them',
      );
    return this.bytes.subarray(e.dataOffset, e.dataOffset + e.size);
  }
}

/** Parse the central directory of a zip file. `source` names the file in error messages. */
export function readZip(bytes: Uint8Array, source = 'zip file'): ZipArchive {
  const fail = (msg: string): never => {
    throw new ZipError(`${source}: ${msg}`);
  };
  const len = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  const u16 = (p: number) => dv.getUint16(p, true);
  const u32 = (p: number) => dv.getUint32(p, true);
  const u64 = (p: number, what: string): number => {
    const v = dv.getBigUint64(p, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} ${v} is too large`);
    return Number(v);
  };

  // End of central directory: 22 bytes + comment (≤ 65535), searched backwards from the end.
  if (len < 22) fail(`truncated: ${len} bytes, too short for a zip archive`);
  let eocd = -1;
  for (let p = len - 22; p >= Math.max(0, len - 22 - 0xffff); p--) {
    if (u32(p) === SIG_EOCD && p + 22 + u16(p + 20) <= len) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) fail('no end-of-central-directory record (the file is truncated or not a zip archive)');

  let count = u16(eocd + 10);
  let cdSize = u32(eocd + 12);
  let cdOffset = u32(eocd + 16);
  // zip64: a locator (20 bytes) right before the EOCD points at the zip64 end record.
  if (eocd >= 20 && u32(eocd - 20) === SIG_ZIP64_LOCATOR) {
    const z = u64(eocd - 20 + 8, 'zip64 end record offset');
    if (z + 56 > eocd || u32(z) !== SIG_ZIP64_EOCD)
      fail(`zip64 end-of-central-directory record missing or corrupt at byte ${z}`);
    count = u64(z + 32, 'zip64 entry count');
    cdSize = u64(z + 40, 'zip64 central directory size');
    cdOffset = u64(z + 48, 'zip64 central directory offset');
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    fail('the end record needs zip64 values but there is no zip64 locator');
  }
  if (cdOffset + cdSize > eocd)
    fail(`central directory (offset ${cdOffset}, ${cdSize} bytes) runs past its end record at byte ${eocd}`);

  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdOffset + cdSize || u32(p) !== SIG_CENTRAL)
      fail(`central directory entry ${i} of ${count} missing or corrupt at byte ${p}`);
    const method = u16(p + 10);
    let compressedSize = u32(p + 20);
    let size = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    const commentLen = u16(p + 32);
    let localOffset = u32(p + 42);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdOffset + cdSize) fail(`central directory entry ${i} runs past the directory`);
    const nameBytes = bytes.subarray(p + 46, p + 46 + nameLen);
    const name = decoder.decode(nameBytes);
    // zip64 extended information extra field (id 1): 8-byte values for the saturated fields, in order.
    let q = p + 46 + nameLen;
    const qEnd = q + extraLen;
    while (q + 4 <= qEnd) {
      const id = u16(q);
      const sz = u16(q + 2);
      if (q + 4 + sz > qEnd) fail(`entry '${name}': extra field overruns its length`);
      if (id === 1) {
        let r = q + 4;
        const take = (what: string): number => {
          if (r + 8 > q + 4 + sz) fail(`entry '${name}': zip64 extra field too short for the ${what}`);
          const v = u64(r, `entry '${name}' ${what}`);
          r += 8;
          return v;
        };
        if (size === 0xffffffff) size = take('size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localOffset === 0xffffffff) localOffset = take('local header offset');
      }
      q += 4 + sz;
    }
    // The local header gives the payload offset (its extra field is padded; the central one is not).
    if (localOffset + 30 > len || u32(localOffset) !== SIG_LOCAL)
      fail(`entry '${name}': local header missing or corrupt at byte ${localOffset}`);
    const localNameLen = u16(localOffset + 26);
    const localExtraLen = u16(localOffset + 28);
    if (localNameLen !== nameLen) fail(`entry '${name}': local header names a different entry`);
    const dataOffset = localOffset + 30 + localNameLen + localExtraLen;
    if (dataOffset + compressedSize > len)
      fail(
        `truncated: entry '${name}' (${compressedSize} bytes at byte ${dataOffset}) ends past the file end (${len} bytes)`,
      );
    if (method === 0 && compressedSize !== size)
      fail(`entry '${name}' is stored but its sizes differ (${compressedSize} vs ${size})`);
    if (entries.has(name)) fail(`duplicate entry '${name}'`);
    entries.set(name, { name, method, size, compressedSize, dataOffset });
    p = end;
  }
  return new ZipArchive(bytes, source, entries);
}
