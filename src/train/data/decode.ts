/**
 * Image decoding for training and evaluation: PNG, JPEG, BMP, TIFF and WebP, detected from the magic bytes
 * (never the file name), with the semantics of OpenCV `imread(path, IMREAD_COLOR)` that the reference uses (spec §6
 * step 1), followed by its BGR → RGB conversion, so the result is plain 8-bit RGB:
 *
 * - gray (any bit depth) → three equal channels; alpha is dropped, never composited; palette → its colours;
 * - 16-bit PNG samples keep their HIGH byte (libpng `png_set_strip_16`, what OpenCV asks for), not the
 *   rounded v·255/65535 that pngjs computes by default; 1/2/4-bit gray is expanded by bit replication
 *   (v·255/(2^d − 1)), as libpng does;
 * - a PNG tRNS colour key changes nothing (OpenCV drops alpha), although pngjs zeroes those pixels: we
 *   restore them from the key;
 * - JPEG EXIF orientation is applied (imread does so unless IMREAD_IGNORE_ORIENTATION);
 * - PNG gamma / ICC chunks are ignored (as OpenCV does); bytes after IEND are ignored (as libpng does).
 *
 * Decoders: PNG through `pngjs` (skipRescale, so we do the depth conversion above ourselves); JPEG and
 * WebP through wasm builds of mozjpeg (libjpeg-turbo's decoder: bit-identical to OpenCV's libjpeg-turbo)
 * and libwebp, registered by the platform (src/platform/wasm-codecs.ts; `initImageCodecs()` first);
 * TIFF through `tiff` (image-js, pure JS: uncompressed, LZW, Deflate, 1/8/16-bit gray, 8/16-bit RGB,
 * palette; the first page) with libtiff's 8-bit conversion that OpenCV's imread uses (TIFFReadRGBA*):
 * 16-bit gray keeps the high byte, 16-bit RGB becomes (v + 128) / 257, WhiteIsZero is inverted, alpha is
 * dropped (libtiff would premultiply unassociated alpha: such files can differ); BMP through the small
 * decoder below (1/4/8-bit palette, 16/24/32-bit, BI_RGB and BI_BITFIELDS, bottom-up and top-down;
 * RLE/JPEG/PNG-in-BMP compression is refused with a clear error).
 *
 * The result also says which PIL mode the file would open as (`pilMode`), because ground-truth masks are
 * read with PIL in the reference and PIL changes the resampling filter for bilevel ('1') and palette ('P')
 * images (see loadMask in dataset.ts).
 *
 * Platform: no Node API is used here except that pngjs needs Node's `Buffer` (a global in Node; a browser
 * build must alias `pngjs` to its self-contained `pngjs/browser.js`, which carries its own Buffer).
 */
import { PNG } from 'pngjs';
import { decodeTiffRgb } from './tiff.js';

/** Unsupported, corrupt or truncated image bytes. `source` is the file (path or name), `reason` why. */
export class ImageError extends Error {
  override name = 'ImageError';
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`${source}: ${reason}`);
  }
}

export type ImageFormat = 'png' | 'jpeg' | 'bmp' | 'tiff' | 'webp';

/** What the wasm decoders return: RGBA, 8 bits per sample, row-major. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
}

/** Decoders for JPEG and WebP that the platform registers (src/platform/wasm-codecs.ts). */
export interface WasmDecoders {
  jpeg: (bytes: Uint8Array) => RgbaImage;
  webp: (bytes: Uint8Array) => RgbaImage;
}

let wasmDecoders: WasmDecoders | null = null;

export function setWasmDecoders(d: WasmDecoders): void {
  wasmDecoders = d;
}

function wasmDecoder(format: 'jpeg' | 'webp', source: string): (b: Uint8Array) => RgbaImage {
  if (!wasmDecoders)
    throw new ImageError(
      source,
      `${format.toUpperCase()} decoding is not initialised in this program (call initImageCodecs() from src/platform/wasm-codecs.ts first)`,
    );
  return wasmDecoders[format];
}

/**
 * The PIL mode the same file opens as (only what loadMask needs): '1' bilevel (1-bit gray PNG, 2-colour
 * black/white BMP), 'L' gray (with or without alpha, any depth ≥ 2 bits), 'P' palette, 'RGB' colour
 * (with or without alpha).
 */
export type PilMode = '1' | 'L' | 'P' | 'RGB';

/** A decoded image as 8-bit RGB, HWC, row-major: what OpenCV imread + BGR→RGB gives. */
export interface Image8 {
  format: ImageFormat;
  width: number;
  height: number;
  /** length width·height·3 */
  rgb: Uint8Array;
  pilMode: PilMode;
}

/** Which format the bytes are, from the magic bytes; null when none of ours. */
export function sniffFormat(b: Uint8Array): ImageFormat | null {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'bmp';
  if (b.length >= 4 && b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0x00) return 'tiff';
  if (b.length >= 4 && b[0] === 0x4d && b[1] === 0x4d && b[2] === 0x00 && b[3] === 0x2a) return 'tiff';
  if (
    b.length >= 12 &&
    String.fromCharCode(b[0]!, b[1]!, b[2]!, b[3]!) === 'RIFF' &&
    String.fromCharCode(b[8]!, b[9]!, b[10]!, b[11]!) === 'WEBP'
  )
    return 'webp';
  return null;
}

function describeMagic(b: Uint8Array): string {
  if (b.length === 0) return 'the file is empty';
  const hex = Array.from(b.subarray(0, 8), (x) => x.toString(16).padStart(2, '0')).join(' ');
  let what = '';
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) what = ' (looks like GIF)';
  else if (b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46)
    what = ' (a RIFF file, not WebP)';
  else if (b.length >= 12 && String.fromCharCode(b[4]!, b[5]!, b[6]!, b[7]!) === 'ftyp')
    what = ' (looks like HEIC/AVIF)';
  return `not an image file of a supported format: it starts with ${hex}${what}; supported formats are PNG, JPEG, BMP, TIFF and WebP`;
}

/** Decode PNG/JPEG/BMP/TIFF/WebP bytes to 8-bit RGB (OpenCV imread IMREAD_COLOR semantics, RGB order). */
export function decodeImage8(bytes: Uint8Array, source: string): Image8 {
  const format = sniffFormat(bytes);
  if (format === null) throw new ImageError(source, describeMagic(bytes));
  let img: Image8;
  try {
    if (format === 'png') img = decodePng(bytes, source);
    else if (format === 'jpeg') img = decodeJpeg(bytes, source);
    else if (format === 'tiff') img = decodeTiff(bytes, source);
    else if (format === 'webp') img = decodeWebp(bytes, source);
    else img = decodeBmp(bytes, source);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw new ImageError(source, `corrupt or unsupported ${format.toUpperCase()} data: ${msg}`);
  }
  if (img.width <= 0 || img.height <= 0)
    throw new ImageError(source, `image has no pixels (${img.width}×${img.height})`);
  return img;
}

/**
 * Decode PNG/JPEG/BMP bytes to HWC RGB float32 in [0, 1] (v/255), spec §6 steps 1–2. Gray becomes three
 * equal channels and alpha is dropped, like OpenCV imread (which the reference uses) followed by BGR→RGB.
 */
export function decodeImage(
  bytes: Uint8Array,
  source: string,
): { width: number; height: number; rgb: Float32Array } {
  const img = decodeImage8(bytes, source);
  const n = img.rgb.length;
  const out = new Float32Array(n);
  const src = img.rgb;
  for (let i = 0; i < n; i++) out[i] = src[i]! / 255;
  return { width: img.width, height: img.height, rgb: out };
}

// ---------------------------------------------------------------------------------------------------
// PNG

const PNG_LIMIT_PIXELS = 1 << 28;

/** Walk the chunk list: validates lengths, finds IHDR, returns the bytes up to and including IEND. */
function scanPng(b: Uint8Array, source: string): { end: number; width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  for (let i = 0; i < 8; i++)
    if (b[i] !== sig[i])
      throw new ImageError(source, 'corrupt PNG: bad signature (the file was altered in transfer?)');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 8;
  let width = 0;
  let height = 0;
  let first = true;
  let sawData = false;
  for (;;) {
    if (p + 8 > b.length)
      throw new ImageError(source, `truncated PNG: the file ends at byte ${b.length} before the IEND chunk`);
    const len = dv.getUint32(p);
    const type = String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    if (!/^[A-Za-z]{4}$/.test(type))
      throw new ImageError(source, `corrupt PNG: invalid chunk type at byte ${p}`);
    const next = p + 12 + len;
    if (next > b.length)
      throw new ImageError(
        source,
        `truncated PNG: chunk ${type} at byte ${p} needs ${len + 12} bytes but the file ends at byte ${b.length}`,
      );
    if (first) {
      if (type !== 'IHDR' || len < 13)
        throw new ImageError(source, 'corrupt PNG: the first chunk is not IHDR');
      width = dv.getUint32(p + 8);
      height = dv.getUint32(p + 12);
      first = false;
    }
    if (type === 'IDAT') sawData = true;
    if (type === 'IEND') {
      if (!sawData) throw new ImageError(source, 'corrupt PNG: no image data (IDAT) before IEND');
      return { end: next, width, height };
    }
    p = next;
  }
}

interface PngMeta {
  width: number;
  height: number;
  depth: 1 | 2 | 4 | 8 | 16;
  colorType: number;
  data: Uint8Array | Uint16Array;
  transColor?: number[];
}

function decodePng(bytes: Uint8Array, source: string): Image8 {
  const scan = scanPng(bytes, source);
  if (scan.width === 0 || scan.height === 0)
    throw new ImageError(source, `PNG has no pixels (${scan.width}×${scan.height})`);
  if (scan.width * scan.height > PNG_LIMIT_PIXELS)
    throw new ImageError(source, `PNG is too large to decode (${scan.width}×${scan.height} pixels)`);
  const NodeBuffer = (
    globalThis as { Buffer?: { from(a: ArrayBufferLike, o: number, l: number): Uint8Array } }
  ).Buffer;
  if (!NodeBuffer)
    throw new ImageError(source, 'PNG decoding needs a Buffer implementation in this environment');
  const buf = NodeBuffer.from(bytes.buffer, bytes.byteOffset, scan.end);
  const png = PNG.sync.read(buf as never, { skipRescale: true }) as unknown as PngMeta;
  const { width, height, depth, colorType } = png;
  const data = png.data;
  const n = width * height;
  if (data.length < n * 4)
    throw new ImageError(source, 'corrupt PNG: decoded data is shorter than the image');
  const rgb = new Uint8Array(n * 3);
  const trans = colorType === 0 || colorType === 2 ? png.transColor : undefined;
  // pngjs (with skipRescale) returns RGBA samples at the file's depth; palette images come out as 8-bit
  // palette colours. Convert each sample to 8 bits the way libpng does for OpenCV.
  const paletted = colorType === 3;
  const to8 =
    paletted || depth === 8
      ? null
      : depth === 16
        ? (v: number) => v >>> 8
        : (v: number) => (v * 255) / ((1 << depth) - 1);
  for (let i = 0; i < n; i++) {
    let r = data[i * 4]!;
    let g = data[i * 4 + 1]!;
    let b = data[i * 4 + 2]!;
    if (trans && data[i * 4 + 3] === 0) {
      // pngjs zeroed a pixel that matched the tRNS key; its colour IS the key
      r = trans[0]!;
      g = trans.length === 1 ? r : trans[1]!;
      b = trans.length === 1 ? r : trans[2]!;
    }
    if (to8) {
      r = to8(r);
      g = to8(g);
      b = to8(b);
    }
    rgb[i * 3] = r;
    rgb[i * 3 + 1] = g;
    rgb[i * 3 + 2] = b;
  }
  let pilMode: PilMode;
  if (colorType === 3) pilMode = 'P';
  else if (colorType === 0 || colorType === 4) pilMode = colorType === 0 && depth === 1 ? '1' : 'L';
  else pilMode = 'RGB';
  return { format: 'png', width, height, rgb, pilMode };
}

// ---------------------------------------------------------------------------------------------------
// JPEG

/** EXIF orientation (1–8) from the APP1 payload after "Exif\0" (leading NULs skipped); 1 when absent. */
export function exifOrientation(exif: Uint8Array | undefined): number {
  if (!exif) return 1;
  let t = 0;
  // the APP1 header is "Exif\0\0"; a payload that keeps its second NUL (as jpeg-js gave it) is accepted
  while (t < exif.length && t < 2 && exif[t] === 0) t++;
  if (exif.length < t + 8) return 1;
  const dv = new DataView(exif.buffer, exif.byteOffset, exif.byteLength);
  const le = exif[t] === 0x49 && exif[t + 1] === 0x49;
  const be = exif[t] === 0x4d && exif[t + 1] === 0x4d;
  if (!le && !be) return 1;
  if (dv.getUint16(t + 2, le) !== 42) return 1;
  const ifd = t + dv.getUint32(t + 4, le);
  if (ifd + 2 > exif.length) return 1;
  const count = dv.getUint16(ifd, le);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > exif.length) return 1;
    if (dv.getUint16(e, le) !== 0x0112) continue;
    const type = dv.getUint16(e + 2, le);
    const v = type === 3 ? dv.getUint16(e + 8, le) : type === 4 ? dv.getUint32(e + 8, le) : 0;
    return v >= 1 && v <= 8 ? v : 1;
  }
  return 1;
}

/** Apply EXIF orientation `o` to an HWC 3-channel image (the transform that makes it display upright). */
export function applyOrientation(
  rgb: Uint8Array,
  w: number,
  h: number,
  o: number,
): { rgb: Uint8Array; width: number; height: number } {
  if (o <= 1 || o > 8) return { rgb, width: w, height: h };
  const swap = o >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number;
      let sy: number;
      switch (o) {
        case 2: // mirror horizontally
          sx = w - 1 - x;
          sy = y;
          break;
        case 3: // rotate 180
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;
        case 4: // mirror vertically
          sx = x;
          sy = h - 1 - y;
          break;
        case 5: // transpose
          sx = y;
          sy = x;
          break;
        case 6: // rotate 90° clockwise
          sx = y;
          sy = h - 1 - x;
          break;
        case 7: // transverse
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;
        default: // 8: rotate 90° counter-clockwise
          sx = w - 1 - y;
          sy = x;
      }
      const si = (sy * w + sx) * 3;
      const di = (y * ow + x) * 3;
      out[di] = rgb[si]!;
      out[di + 1] = rgb[si + 1]!;
      out[di + 2] = rgb[si + 2]!;
    }
  }
  return { rgb: out, width: ow, height: oh };
}

function jpegComponents(b: Uint8Array): number {
  // number of components from the first SOFn marker (1 = gray)
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return 3;
    const m = b[p + 1]!;
    if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7) || m === 0x01 || m === 0xff) {
      p += m === 0xff ? 1 : 2;
      continue;
    }
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc)
      return p + 9 < b.length ? b[p + 9]! : 3;
    if (m === 0xda) return 3;
    p += 2 + len;
  }
  return 3;
}

function decodeJpeg(bytes: Uint8Array, source: string): Image8 {
  // libjpeg pads data cut short with grey and only warns; refuse files that lack the EOI marker
  // within their last bytes (trailing padding after EOI is common and allowed).
  let eoi = false;
  for (let i = bytes.length - 2; i >= Math.max(2, bytes.length - 4096); i--) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) {
      eoi = true;
      break;
    }
  }
  if (!eoi)
    throw new ImageError(source, 'truncated JPEG: no end-of-image marker (FFD9) at the end of the file');
  const d = wasmDecoder('jpeg', source)(bytes);
  if (!d.width || !d.height || d.data.length < d.width * d.height * 4)
    throw new ImageError(source, 'corrupt JPEG: no image data decoded');
  const o = applyOrientation(rgbaToRgb(d), d.width, d.height, exifOrientation(jpegExif(bytes)));
  const pilMode: PilMode = jpegComponents(bytes) === 1 ? 'L' : 'RGB';
  return { format: 'jpeg', width: o.width, height: o.height, rgb: o.rgb, pilMode };
}

/** The EXIF payload of a JPEG (APP1 "Exif\0\0" segment, from the TIFF header on), or undefined. */
function jpegExif(b: Uint8Array): Uint8Array | undefined {
  let p = 2;
  while (p + 4 <= b.length && b[p] === 0xff) {
    const m = b[p + 1]!;
    if (m === 0xda || m === 0xd9) return undefined; // image data starts: no EXIF before it
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    if (
      m === 0xe1 &&
      len >= 8 &&
      String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!) === 'Exif' &&
      b[p + 8] === 0
    )
      return b.subarray(p + 10, Math.min(b.length, p + 2 + len));
    p += 2 + len;
  }
  return undefined;
}

function rgbaToRgb(d: RgbaImage): Uint8Array {
  const n = d.width * d.height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = d.data[i * 4]!;
    rgb[i * 3 + 1] = d.data[i * 4 + 1]!;
    rgb[i * 3 + 2] = d.data[i * 4 + 2]!;
  }
  return rgb;
}

// ---------------------------------------------------------------------------------------------------
// WebP (libwebp in wasm; alpha dropped like imread IMREAD_COLOR)

function decodeWebp(bytes: Uint8Array, source: string): Image8 {
  const d = wasmDecoder('webp', source)(bytes);
  if (!d.width || !d.height || d.data.length < d.width * d.height * 4)
    throw new ImageError(source, 'corrupt WebP: no image data decoded');
  return { format: 'webp', width: d.width, height: d.height, rgb: rgbaToRgb(d), pilMode: 'RGB' };
}

// ---------------------------------------------------------------------------------------------------
// TIFF (src/train/data/tiff.ts, shared with the browser app)

function decodeTiff(bytes: Uint8Array, source: string): Image8 {
  try {
    return { format: 'tiff', ...decodeTiffRgb(bytes) };
  } catch (e) {
    throw new ImageError(source, e instanceof Error ? e.message : String(e));
  }
}

// ---------------------------------------------------------------------------------------------------
// BMP

const BMP_COMPRESSION: Record<number, string> = {
  1: 'RLE8',
  2: 'RLE4',
  4: 'JPEG',
  5: 'PNG',
};

/** Bits of a channel mask: shift to its lowest set bit and its width. */
function maskInfo(mask: number): { shift: number; bits: number } {
  if (mask === 0) return { shift: 0, bits: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (((mask >>> (shift + bits)) & 1) === 1 && shift + bits < 32) bits++;
  return { shift, bits };
}

/** A masked channel value as 8 bits: the top 8 bits, or left-aligned when narrower (OpenCV's 555/565). */
function channel8(v: number, m: { shift: number; bits: number }): number {
  if (m.bits === 0) return 0;
  const x = (v >>> m.shift) & (m.bits >= 32 ? 0xffffffff : (1 << m.bits) - 1);
  return m.bits >= 8 ? x >>> (m.bits - 8) : (x << (8 - m.bits)) & 0xff;
}

function decodeBmp(b: Uint8Array, source: string): Image8 {
  const fail = (why: string): never => {
    throw new ImageError(source, why);
  };
  if (b.length < 26) fail(`truncated BMP: only ${b.length} bytes`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dataOffset = dv.getUint32(10, true);
  const hdr = dv.getUint32(14, true);
  let width: number;
  let height: number;
  let bpp: number;
  let compression = 0;
  let colorsUsed = 0;
  let paletteEntry = 4;
  if (hdr === 12) {
    width = dv.getUint16(18, true);
    height = dv.getInt16(20, true);
    bpp = dv.getUint16(24, true);
    paletteEntry = 3;
  } else if (hdr >= 40) {
    if (b.length < 14 + 40) fail(`truncated BMP: the header needs 54 bytes, the file has ${b.length}`);
    width = dv.getInt32(18, true);
    height = dv.getInt32(22, true);
    bpp = dv.getUint16(28, true);
    compression = dv.getUint32(30, true);
    colorsUsed = dv.getUint32(46, true);
  } else {
    return fail(`unsupported BMP header (size ${hdr}; expected 12, 40, 52, 56, 108 or 124)`);
  }
  const topDown = height < 0;
  height = Math.abs(height);
  if (width <= 0 || height <= 0) fail(`corrupt BMP: size ${width}×${height}`);
  if (width * height > PNG_LIMIT_PIXELS) fail(`BMP is too large to decode (${width}×${height} pixels)`);
  if (BMP_COMPRESSION[compression])
    fail(
      `${BMP_COMPRESSION[compression]}-compressed BMP is not supported; re-save it as an uncompressed BMP or as PNG`,
    );
  const bitfields = compression === 3 || compression === 6;
  if (compression !== 0 && !bitfields) fail(`unsupported BMP compression type ${compression}`);
  if (![1, 4, 8, 16, 24, 32].includes(bpp))
    fail(`unsupported BMP bit depth ${bpp} (supported: 1, 4, 8, 16, 24, 32)`);
  if (bitfields && bpp !== 16 && bpp !== 32) fail(`corrupt BMP: bit-field masks with ${bpp} bits per pixel`);

  // channel masks (BI_BITFIELDS: right after the 40-byte header, or inside a V2+ header — same offset)
  let masks = bpp === 16 ? [0x7c00, 0x03e0, 0x001f] : [0xff0000, 0xff00, 0xff];
  let paletteStart = 14 + hdr;
  if (bitfields) {
    if (b.length < 54 + 12) fail('truncated BMP: bit-field masks missing');
    masks = [dv.getUint32(54, true), dv.getUint32(58, true), dv.getUint32(62, true)];
    if (hdr === 40) paletteStart += compression === 6 ? 16 : 12;
  }
  const mi = masks.map(maskInfo);

  let palette: Uint8Array | null = null; // RGB triples
  let nColors = 0;
  if (bpp <= 8) {
    nColors = colorsUsed > 0 && colorsUsed <= 1 << bpp ? colorsUsed : 1 << bpp;
    if (paletteStart + nColors * paletteEntry > b.length)
      fail('truncated BMP: the colour table is cut short');
    palette = new Uint8Array(nColors * 3);
    for (let i = 0; i < nColors; i++) {
      const q = paletteStart + i * paletteEntry;
      palette[i * 3] = b[q + 2]!;
      palette[i * 3 + 1] = b[q + 1]!;
      palette[i * 3 + 2] = b[q]!;
    }
  }

  const stride = Math.floor((width * bpp + 31) / 32) * 4;
  const rowBytes = Math.ceil((width * bpp) / 8);
  if (dataOffset + stride * (height - 1) + rowBytes > b.length)
    fail(
      `truncated BMP: ${width}×${height} at ${bpp} bits needs ${dataOffset + stride * (height - 1) + rowBytes} bytes, the file has ${b.length}`,
    );

  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      if (palette) {
        const bit = x * bpp;
        const byte = b[row + (bit >> 3)]!;
        const idx = bpp === 8 ? byte : (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        if (idx < nColors) {
          rgb[o] = palette[idx * 3]!;
          rgb[o + 1] = palette[idx * 3 + 1]!;
          rgb[o + 2] = palette[idx * 3 + 2]!;
        } // an index past the colour table reads as black
      } else if (bpp === 24) {
        const q = row + x * 3;
        rgb[o] = b[q + 2]!;
        rgb[o + 1] = b[q + 1]!;
        rgb[o + 2] = b[q]!;
      } else {
        const v = bpp === 32 ? dv.getUint32(row + x * 4, true) : dv.getUint16(row + x * 2, true);
        rgb[o] = channel8(v, mi[0]!);
        rgb[o + 1] = channel8(v, mi[1]!);
        rgb[o + 2] = channel8(v, mi[2]!);
      }
    }
  }

  let pilMode: PilMode = 'RGB';
  if (palette) {
    // PIL (BmpImagePlugin) drops a palette that is gray: black+white for two colours ('1'), else entry i
    // equal to (i, i, i) for every i ('L')
    let ramp = nColors >= 2;
    for (let i = 0; i < nColors && ramp; i++) {
      const g = nColors === 2 ? i * 255 : i;
      ramp = palette[i * 3] === g && palette[i * 3 + 1] === g && palette[i * 3 + 2] === g;
    }
    pilMode = ramp ? (nColors === 2 ? '1' : 'L') : 'P';
  }
  return { format: 'bmp', width, height, rgb, pilMode };
}
