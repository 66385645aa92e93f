/**
 * A tar reader for an already-decompressed archive in memory (platform-neutral: no Node API).
 *
 * Format (POSIX ustar, plus the pax and GNU extensions that real archives use):
 * - the archive is a sequence of 512-byte blocks; each entry is one header block followed by its data,
 *   padded with zeros to a multiple of 512;
 * - header fields: name [0,100), mode [100,108), uid, gid, size [124,136) (octal text, or GNU base-256
 *   when the high bit of the first byte is set), mtime [136,148), checksum [148,156) (octal sum of all
 *   header bytes with the checksum field counted as spaces), typeflag [156], linkname [157,257),
 *   magic [257,263) ("ustar\0" POSIX, "ustar " GNU), prefix [345,500) (ustar: path = prefix + '/' + name);
 * - a pax extended header (typeflag 'x') carries "LEN key=value\n" records that override fields of the
 *   NEXT entry (`path`, `linkpath`, `size`); a global one ('g') applies to all following entries;
 *   GNU long names ('L') / long links ('K') carry the next entry's name / link target as data;
 * - the archive ends with two zero blocks (a single zero block at the very end is accepted, as GNU tar
 *   does). Anything else that runs off the end of the buffer is reported as a truncated archive.
 *
 * Data are returned as subarrays of the input (no copy): copy them (`slice()`) to keep only a few small
 * entries of a large archive alive.
 */

export class TarError extends Error {
  override name = 'TarError';
}

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** Full path as stored (pax `path` / GNU long name / ustar prefix + name), e.g. `package/lib/index.js`. */
  path: string;
  type: TarEntryType;
  /** The raw typeflag character ('0', '5', '2', …; '\0' for old-style regular files). */
  typeflag: string;
  size: number;
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  linkpath: string;
  /** The entry's data (a view into the archive bytes; empty for non-files). */
  data: Uint8Array;
}

const BLOCK = 512;
const utf8 = new TextDecoder('utf-8');

/** A NUL-terminated string field. */
function str(h: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && h[end] !== 0) end++;
  return utf8.decode(h.subarray(off, end));
}

/** A numeric field: octal text (spaces/NULs allowed around it) or GNU base-256 (high bit of byte 0 set). */
function num(h: Uint8Array, off: number, len: number, field: string, where: string): number {
  const b0 = h[off]!;
  if (b0 & 0x80) {
    // base-256, big-endian two's complement; only non-negative values make sense for size/mode/mtime
    if (b0 & 0x40) throw new TarError(`${where}: negative base-256 ${field}`);
    let v = b0 & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + h[off + i]!;
    return v;
  }
  const s = str(h, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError(`${where}: ${field} field is not octal: '${s}'`);
  return Number.parseInt(s, 8);
}

function isZeroBlock(b: Uint8Array, off: number): boolean {
  for (let i = off; i < off + BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parse pax records "LEN key=value\n" (LEN counts the whole record in bytes, itself included). */
function parsePax(data: Uint8Array, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    if (data[p] === 0) break; // some writers pad with NULs
    let sp = p;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = Number.parseInt(utf8.decode(data.subarray(p, sp)), 10);
    if (!Number.isFinite(len) || len <= sp - p || p + len > data.length || data[p + len - 1] !== 0x0a)
      throw new TarError(`${where}: malformed pax extended header record at byte ${p}`);
    const rec = utf8.decode(data.subarray(sp + 1, p + len - 1));
    const eq = rec.indexOf('=');
    if (eq < 0) throw new TarError(`${where}: pax record without '=': '${rec}'`);
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    p += len;
  }
  return out;
}

function entryType(flag: string): TarEntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '7': // contiguous file: a regular file for every practical purpose
      return 'file';
    case '5':
      return 'directory';
    case '2':
      return 'symlink';
    case '1':
      return 'hardlink';
    default:
      return 'other';
  }
}

/**
 * Iterate over the entries of an uncompressed tar archive (meta entries — pax and GNU long-name
 * headers — are consumed, not yielded). Throws TarError for a corrupt header (bad checksum, non-octal
 * field) or a truncated archive.
 */
export function* tarEntries(bytes: Uint8Array): Generator<TarEntry> {
  let off = 0;
  let pax = new Map<string, string>(); // for the next entry only
  let globalPax = new Map<string, string>();
  let longName: string | null = null;
  let longLink: string | null = null;
  for (;;) {
    if (off === bytes.length) {
      throw new TarError(
        `truncated tar archive: it ends at byte ${off} without the end-of-archive marker (two zero blocks)`,
      );
    }
    if (off + BLOCK > bytes.length)
      throw new TarError(
        `truncated tar archive: a header at byte ${off} needs ${BLOCK} bytes, only ${bytes.length - off} left`,
      );
    if (isZeroBlock(bytes, off)) {
      // end of archive: two zero blocks; accept a lone zero block at the very end as well
      if (off + BLOCK === bytes.length || off + 2 * BLOCK > bytes.length || isZeroBlock(bytes, off + BLOCK))
        return;
      throw new TarError(`corrupt tar archive: a zero block at byte ${off} is followed by data`);
    }
    const h = bytes.subarray(off, off + BLOCK);
    const where = `tar header at byte ${off}`;
    // checksum: header bytes summed with the checksum field read as 8 spaces (unsigned; some old writers
    // used signed bytes, accept either)
    const want = num(h, 148, 8, 'checksum', where);
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < BLOCK; i++) {
      const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
      unsigned += b;
      signed += b > 127 ? b - 256 : b;
    }
    if (want !== unsigned && want !== signed)
      throw new TarError(
        `${where}: checksum mismatch (stored ${want}, computed ${unsigned}); not a tar archive, or corrupt`,
      );
    const flag = String.fromCharCode(h[156]!);
    let size = num(h, 124, 12, 'size', where);
    const paxSize = pax.get('size') ?? globalPax.get('size');
    if (paxSize !== undefined && flag !== 'x' && flag !== 'g') size = Number(paxSize);
    const dataStart = off + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > bytes.length)
      throw new TarError(
        `truncated tar archive: entry '${str(h, 0, 100)}' (${where}) has ${size} bytes of data, ` +
          `only ${bytes.length - dataStart} left`,
      );
    const data = bytes.subarray(dataStart, dataEnd);
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (off > bytes.length) off = bytes.length; // final padding missing: reported as truncated above

    if (flag === 'x') {
      pax = parsePax(data, where);
      continue;
    }
    if (flag === 'g') {
      globalPax = new Map([...globalPax, ...parsePax(data, where)]);
      continue;
    }
    if (flag === 'L' || flag === 'K') {
      const s = str(data, 0, data.length);
      if (flag === 'L') longName = s;
      else longLink = s;
      continue;
    }

    const magic = str(h, 257, 6);
    const prefix = magic.startsWith('ustar') ? str(h, 345, 155) : '';
    const name = str(h, 0, 100);
    let path = prefix ? `${prefix}/${name}` : name;
    if (longName !== null) path = longName;
    const p = pax.get('path') ?? globalPax.get('path');
    if (p !== undefined) path = p;
    let linkpath = str(h, 157, 100);
    if (longLink !== null) linkpath = longLink;
    const lp = pax.get('linkpath') ?? globalPax.get('linkpath');
    if (lp !== undefined) linkpath = lp;
    pax = new Map();
    longName = null;
    longLink = null;

    const type = entryType(flag);
    yield {
      path,
      type,
      typeflag: flag,
      size,
      mode: num(h, 100, 8, 'mode', where),
      mtime: num(h, 136, 12, 'mtime', where),
      linkpath,
      data: type === 'file' ? data : data.subarray(0, 0),
    };
  }
}

/**
 * The regular files of an uncompressed tar archive, path → data (views into `bytes`). `wanted` filters by
 * path (all files by default). A path that occurs twice keeps its last version, as `tar x` would.
 */
export function readTar(bytes: Uint8Array, wanted?: (path: string) => boolean): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const e of tarEntries(bytes)) {
    if (e.type !== 'file') continue;
    if (wanted && !wanted(e.path)) continue;
    out.set(e.path, e.data);
  }
  return out;
}
