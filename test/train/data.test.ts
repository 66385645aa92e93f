/**
 * The data side (spec §6): decoding PNG/JPEG/BMP variants built here (pngjs, jpeg-js's encoder, and PNG/BMP
 * byte builders written below), corrupt inputs, OpenCV INTER_LINEAR resize on hand-computed cases and the
 * 1024→256 property, PIL antialiased bilinear mask resize on hand-derived cases, and dataset discovery on
 * the real MVTec 3D-AD tire subset plus temp-folder BTAD / plain layouts and their errors.
 * CPU only (no GPU).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { encode as jpegEncode } from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeFileSystem } from '../../src/platform/files.js';
import { initImageCodecs } from '../../src/platform/wasm-codecs.js';
import {
  DatasetError,
  decodeImage,
  decodeImage8,
  discoverDataset,
  type FileSystem,
  ImageError,
  LoadError,
  loadBatch,
  loadMask,
  loadSample,
  pilResizeBilinear8,
  pilResizeNearest8,
  resizeLinear,
  type Sample,
} from '../../src/train/data/index.js';

// JPEG and WebP decode through the wasm decoders the CLI registers at start
beforeAll(initImageCodecs);

// ---------------------------------------------------------------------------------------------------
// builders

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A PNG written byte by byte: samples are unpacked per row (1 per gray/index, 3 RGB, …). */
function makePng(o: {
  w: number;
  h: number;
  colorType: 0 | 2 | 3 | 4 | 6;
  depth: 1 | 2 | 4 | 8 | 16;
  samples: number[]; // row-major, all samples of all pixels
  palette?: number[][];
  trns?: number[];
}): Uint8Array {
  const spp = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[o.colorType];
  const rowBytes = Math.ceil((o.w * spp * o.depth) / 8);
  const raw = new Uint8Array(o.h * (rowBytes + 1));
  for (let y = 0; y < o.h; y++) {
    const base = y * (rowBytes + 1) + 1; // filter byte 0 (None)
    for (let i = 0; i < o.w * spp; i++) {
      const v = o.samples[y * o.w * spp + i]!;
      if (o.depth === 16) {
        raw[base + 2 * i] = v >> 8;
        raw[base + 2 * i + 1] = v & 0xff;
      } else if (o.depth === 8) raw[base + i] = v;
      else {
        const bit = i * o.depth;
        raw[base + (bit >> 3)]! |= v << (8 - o.depth - (bit & 7));
      }
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, o.w);
  dv.setUint32(4, o.h);
  ihdr[8] = o.depth;
  ihdr[9] = o.colorType;
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (o.palette) parts.push(chunk('PLTE', new Uint8Array(o.palette.flat())));
  if (o.trns) {
    const t =
      o.colorType === 3 ? new Uint8Array(o.trns) : new Uint8Array(o.trns.flatMap((v) => [v >> 8, v & 0xff])); // 16-bit per sample for gray/RGB keys
    parts.push(chunk('tRNS', t));
  }
  parts.push(chunk('IDAT', new Uint8Array(deflateSync(raw))), chunk('IEND', new Uint8Array(0)));
  return concat(parts);
}

/** pngjs encoder, input given in the output colour type. */
function pngjsEncode(
  w: number,
  h: number,
  colorType: 0 | 2 | 4 | 6,
  data: Uint8Array | Uint16Array,
  bitDepth: 8 | 16 = 8,
) {
  const png = new PNG({
    width: w,
    height: h,
    colorType,
    inputColorType: colorType,
    bitDepth,
    inputHasAlpha: colorType >= 4,
  });
  png.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(
    PNG.sync.write(png, { colorType, inputColorType: colorType, bitDepth, inputHasAlpha: colorType >= 4 }),
  );
}

/** A BMP written byte by byte (BITMAPINFOHEADER). `px(x, y)` gives [r,g,b] or a palette index. */
function makeBmp(o: {
  w: number;
  h: number;
  bpp: 1 | 8 | 24 | 32;
  topDown?: boolean;
  palette?: number[][];
  px: (x: number, y: number) => number[] | number;
  compression?: number;
}): Uint8Array {
  const stride = Math.floor((o.w * o.bpp + 31) / 32) * 4;
  const pal = o.palette ?? [];
  const dataOffset = 14 + 40 + pal.length * 4;
  const size = dataOffset + stride * o.h;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  b[0] = 0x42;
  b[1] = 0x4d;
  dv.setUint32(2, size, true);
  dv.setUint32(10, dataOffset, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, o.w, true);
  dv.setInt32(22, o.topDown ? -o.h : o.h, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, o.bpp, true);
  dv.setUint32(30, o.compression ?? 0, true);
  dv.setUint32(46, pal.length, true);
  pal.forEach(([r, g, bl], i) => {
    b[54 + i * 4] = bl!;
    b[54 + i * 4 + 1] = g!;
    b[54 + i * 4 + 2] = r!;
  });
  for (let y = 0; y < o.h; y++) {
    const row = dataOffset + (o.topDown ? y : o.h - 1 - y) * stride;
    for (let x = 0; x < o.w; x++) {
      const v = o.px(x, y);
      if (o.bpp === 1) b[row + (x >> 3)]! |= (v as number) << (7 - (x & 7));
      else if (o.bpp === 8) b[row + x] = v as number;
      else {
        const [r, g, bl] = v as number[];
        const q = row + x * (o.bpp / 8);
        b[q] = bl!;
        b[q + 1] = g!;
        b[q + 2] = r!;
        if (o.bpp === 32) b[q + 3] = 0x55; // alpha/unused byte: must be ignored
      }
    }
  }
  return b;
}

/** Deterministic pseudo-random bytes. */
function lcgBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

const W = 5;
const H = 3;
const RGB = lcgBytes(W * H * 3, 7);
const GRAY = lcgBytes(W * H, 11);

function expectRgb(
  got: { width: number; height: number; rgb: Uint8Array },
  w: number,
  h: number,
  want: (i: number) => number,
) {
  expect([got.width, got.height]).toEqual([w, h]);
  expect(got.rgb.length).toBe(w * h * 3);
  const bad: number[] = [];
  for (let i = 0; i < w * h * 3; i++) if (got.rgb[i] !== want(i)) bad.push(i);
  expect(bad).toEqual([]);
}

// ---------------------------------------------------------------------------------------------------

describe('decodeImage: PNG', () => {
  it('8-bit RGB (pngjs) → exact RGB, and the float version is v/255', () => {
    const bytes = pngjsEncode(W, H, 2, RGB);
    const d = decodeImage8(bytes, 'rgb.png');
    expect(d.format).toBe('png');
    expect(d.pilMode).toBe('RGB');
    expectRgb(d, W, H, (i) => RGB[i]!);
    const f = decodeImage(bytes, 'rgb.png');
    expect(f.rgb).toBeInstanceOf(Float32Array);
    expect([f.width, f.height]).toEqual([W, H]);
    for (let i = 0; i < RGB.length; i++) expect(f.rgb[i]).toBe(Math.fround(RGB[i]! / 255));
  });

  it('RGBA drops alpha without compositing (transparent pixels keep their colour)', () => {
    const rgba = new Uint8Array(W * H * 4);
    for (let p = 0; p < W * H; p++) {
      rgba.set(RGB.subarray(p * 3, p * 3 + 3), p * 4);
      rgba[p * 4 + 3] = p % 3 === 0 ? 0 : 128;
    }
    const d = decodeImage8(pngjsEncode(W, H, 6, rgba), 'rgba.png');
    expect(d.pilMode).toBe('RGB');
    expectRgb(d, W, H, (i) => RGB[i]!);
  });

  it('gray and gray+alpha → three equal channels', () => {
    const g = decodeImage8(pngjsEncode(W, H, 0, GRAY), 'g.png');
    expect(g.pilMode).toBe('L');
    expectRgb(g, W, H, (i) => GRAY[Math.floor(i / 3)]!);
    const ga = new Uint8Array(W * H * 2);
    for (let p = 0; p < W * H; p++) {
      ga[p * 2] = GRAY[p]!;
      ga[p * 2 + 1] = 255 - p;
    }
    const d = decodeImage8(pngjsEncode(W, H, 4, ga), 'ga.png');
    expect(d.pilMode).toBe('L');
    expectRgb(d, W, H, (i) => GRAY[Math.floor(i / 3)]!);
  });

  it('16-bit keeps the high byte like OpenCV (not pngjs’s rounded rescale)', () => {
    // 0x12FF: high byte 18; a rounded rescale would give round(4863·255/65535) = 19
    const vals = [0x12ff, 0x0080, 0xffff, 0x0000, 0x7f80, 0x8000];
    const u16 = new Uint16Array(2 * 1 * 3);
    u16.set(vals);
    const d = decodeImage8(pngjsEncode(2, 1, 2, u16, 16), 'rgb16.png');
    expectRgb(d, 2, 1, (i) => vals[i]! >> 8);
    const g16 = decodeImage8(
      makePng({ w: 3, h: 1, colorType: 0, depth: 16, samples: [0x12ff, 0xff00, 0x00ff] }),
      'g16.png',
    );
    expectRgb(g16, 3, 1, (i) => [0x12, 0xff, 0x00][Math.floor(i / 3)]!);
  });

  it('palette (with tRNS alpha) → palette colours; 1-, 2- and 4-bit gray expand like libpng', () => {
    const palette = [
      [10, 20, 30],
      [200, 100, 50],
      [0, 255, 7],
    ];
    const idx = [0, 1, 2, 2, 1, 0];
    const p8 = decodeImage8(
      makePng({ w: 3, h: 2, colorType: 3, depth: 8, samples: idx, palette, trns: [0, 128, 255] }),
      'p.png',
    );
    expect(p8.pilMode).toBe('P');
    expectRgb(p8, 3, 2, (i) => palette[idx[Math.floor(i / 3)]!]![i % 3]!);
    const p2 = decodeImage8(makePng({ w: 3, h: 2, colorType: 3, depth: 2, samples: idx, palette }), 'p2.png');
    expectRgb(p2, 3, 2, (i) => palette[idx[Math.floor(i / 3)]!]![i % 3]!);

    const bits = [1, 0, 1, 1, 0, 0, 1, 0, 1];
    const b1 = decodeImage8(makePng({ w: 9, h: 1, colorType: 0, depth: 1, samples: bits }), 'b1.png');
    expect(b1.pilMode).toBe('1');
    expectRgb(b1, 9, 1, (i) => bits[Math.floor(i / 3)]! * 255);
    const g2 = [0, 1, 2, 3, 3];
    expectRgb(
      decodeImage8(makePng({ w: 5, h: 1, colorType: 0, depth: 2, samples: g2 }), 'g2.png'),
      5,
      1,
      (i) => g2[Math.floor(i / 3)]! * 85,
    );
    const g4 = [0, 15, 7, 1];
    expectRgb(
      decodeImage8(makePng({ w: 4, h: 1, colorType: 0, depth: 4, samples: g4 }), 'g4.png'),
      4,
      1,
      (i) => g4[Math.floor(i / 3)]! * 17,
    );
  });

  it('a tRNS colour key changes nothing (pngjs zeroes those pixels; we restore them)', () => {
    const samples = [9, 8, 7, 1, 2, 3, 9, 8, 7];
    const d = decodeImage8(
      makePng({ w: 3, h: 1, colorType: 2, depth: 8, samples, trns: [9, 8, 7] }),
      'key.png',
    );
    expectRgb(d, 3, 1, (i) => samples[i]!);
    const g = decodeImage8(
      makePng({ w: 3, h: 1, colorType: 0, depth: 8, samples: [5, 6, 5], trns: [5] }),
      'gkey.png',
    );
    expectRgb(g, 3, 1, (i) => [5, 6, 5][Math.floor(i / 3)]!);
  });

  it('ignores bytes after IEND', () => {
    const bytes = concat([pngjsEncode(W, H, 2, RGB), new Uint8Array([1, 2, 3, 4, 5])]);
    expectRgb(decodeImage8(bytes, 'trail.png'), W, H, (i) => RGB[i]!);
  });
});

describe('decodeImage: JPEG and BMP', () => {
  it('JPEG from jpeg-js’s encoder: RGB close to the source at quality 100', () => {
    const w = 16;
    const h = 8;
    const rgba = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) rgba.set([x * 16, y * 32, 128, 255], (y * w + x) * 4); // smooth ramps
    const jpg = new Uint8Array(jpegEncode({ width: w, height: h, data: rgba }, 100).data);
    const d = decodeImage8(jpg, 'a.jpg');
    expect(d.format).toBe('jpeg');
    expect([d.width, d.height, d.pilMode]).toEqual([w, h, 'RGB']);
    let maxErr = 0;
    for (let p = 0; p < w * h; p++)
      for (let c = 0; c < 3; c++) maxErr = Math.max(maxErr, Math.abs(d.rgb[p * 3 + c]! - rgba[p * 4 + c]!));
    expect(maxErr).toBeLessThanOrEqual(6);
  });

  it('JPEG EXIF orientation is applied like imread (6 = rotate 90° clockwise, 8 = counter-clockwise)', () => {
    const w = 4;
    const h = 2;
    const rgba = new Uint8Array(w * h * 4);
    for (let p = 0; p < w * h; p++) rgba.set([p * 30, 255 - p * 30, (p * 70) % 256, 255], p * 4);
    const exif = (o: number) =>
      new Uint8Array([
        ...[0x45, 0x78, 0x69, 0x66, 0, 0], // "Exif\0\0"
        ...[0x49, 0x49, 42, 0, 8, 0, 0, 0], // little-endian TIFF, IFD0 at 8
        ...[1, 0], // one entry
        ...[0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0], // 0x0112 SHORT 1 = o
        ...[0, 0, 0, 0],
      ]);
    const enc = (o: number | null) =>
      new Uint8Array(
        jpegEncode({ width: w, height: h, data: rgba, ...(o ? { exifBuffer: exif(o) } : {}) } as never, 95)
          .data,
      );
    const plain = decodeImage8(enc(null), 'plain.jpg');
    const at = (x: number, y: number) => Array.from(plain.rgb.subarray((y * w + x) * 3, (y * w + x) * 3 + 3));
    const r6 = decodeImage8(enc(6), 'o6.jpg');
    const r8 = decodeImage8(enc(8), 'o8.jpg');
    const r3 = decodeImage8(enc(3), 'o3.jpg');
    expect([r6.width, r6.height, r8.width, r8.height, r3.width, r3.height]).toEqual([h, w, h, w, w, h]);
    for (let y = 0; y < w; y++)
      for (let x = 0; x < h; x++) {
        const i = (y * h + x) * 3;
        expect(Array.from(r6.rgb.subarray(i, i + 3))).toEqual(at(y, h - 1 - x)); // clockwise
        expect(Array.from(r8.rgb.subarray(i, i + 3))).toEqual(at(w - 1 - y, x)); // counter-clockwise
      }
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 3;
        expect(Array.from(r3.rgb.subarray(i, i + 3))).toEqual(at(w - 1 - x, h - 1 - y));
      }
  });

  it('BMP 24-bit bottom-up with row padding', () => {
    const px = (x: number, y: number) => Array.from(RGB.subarray((y * W + x) * 3, (y * W + x) * 3 + 3));
    const d = decodeImage8(makeBmp({ w: W, h: H, bpp: 24, px }), 'a.bmp');
    expect(d.format).toBe('bmp');
    expect(d.pilMode).toBe('RGB');
    expectRgb(d, W, H, (i) => RGB[i]!);
  });

  it('BMP 32-bit top-down ignores the fourth byte', () => {
    const px = (x: number, y: number) => Array.from(RGB.subarray((y * W + x) * 3, (y * W + x) * 3 + 3));
    expectRgb(
      decodeImage8(makeBmp({ w: W, h: H, bpp: 32, topDown: true, px }), 'b.bmp'),
      W,
      H,
      (i) => RGB[i]!,
    );
  });

  it('BMP 8-bit palette, gray-ramp palette (PIL mode L) and 1-bit black/white (mode 1)', () => {
    const palette = [
      [255, 0, 0],
      [0, 0, 255],
      [17, 34, 51],
    ];
    const idx = (x: number, y: number) => (x + 2 * y) % 3;
    const d = decodeImage8(makeBmp({ w: W, h: H, bpp: 8, palette, px: idx }), 'p.bmp');
    expect(d.pilMode).toBe('P');
    expectRgb(d, W, H, (i) => {
      const p = Math.floor(i / 3);
      return palette[idx(p % W, Math.floor(p / W))]![i % 3]!;
    });
    const ramp = Array.from({ length: 256 }, (_, i) => [i, i, i]);
    const g = decodeImage8(
      makeBmp({ w: W, h: H, bpp: 8, palette: ramp, px: (x, y) => GRAY[y * W + x]! }),
      'g.bmp',
    );
    expect(g.pilMode).toBe('L');
    expectRgb(g, W, H, (i) => GRAY[Math.floor(i / 3)]!);
    const bw = [
      [0, 0, 0],
      [255, 255, 255],
    ];
    const b1 = decodeImage8(
      makeBmp({ w: 10, h: 2, bpp: 1, palette: bw, px: (x, y) => (x + y) % 2 }),
      'b1.bmp',
    );
    expect(b1.pilMode).toBe('1');
    expectRgb(b1, 10, 2, (i) => {
      const p = Math.floor(i / 3);
      return ((p % 10) + Math.floor(p / 10)) % 2 ? 255 : 0;
    });
  });

  it('compressed BMP → ImageError naming the compression', () => {
    const bytes = makeBmp({ w: 2, h: 2, bpp: 8, palette: [[0, 0, 0]], px: () => 0, compression: 1 });
    expect(() => decodeImage8(bytes, '/x/rle.bmp')).toThrow(
      /\/x\/rle\.bmp: RLE8-compressed BMP is not supported/,
    );
  });
});

describe('decodeImage: bad bytes', () => {
  const png = pngjsEncode(W, H, 2, RGB);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty.png', new Uint8Array(0), /empty\.png: the file is empty/],
    [
      'text.png',
      new TextEncoder().encode('hello world, not an image'),
      /text\.png: not an image file of a supported format/,
    ],
    ['gif.png', new TextEncoder().encode('GIF89a....'), /gif\.png: .*looks like GIF/],
    ['half.png', png.subarray(0, Math.floor(png.length / 2)), /half\.png: truncated PNG/],
    [
      'sig.png',
      concat([png.subarray(0, 4), png.subarray(4, 8).map((x) => x ^ 1), png.subarray(8)]),
      /sig\.png: .*PNG/,
    ],
  ];
  for (const [name, bytes, re] of cases)
    it(`${name} → ImageError`, () => {
      let err: unknown;
      try {
        decodeImage(bytes, name);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ImageError);
      expect((err as ImageError).source).toBe(name);
      expect(String((err as Error).message)).toMatch(re);
    });

  it('corrupted PNG data (CRC) → ImageError with the file name', () => {
    const bad = png.slice();
    // flip a byte inside the IDAT payload (after the 8-byte signature + 25-byte IHDR + 8-byte IDAT header)
    bad[8 + 25 + 8 + 3]! ^= 0xff;
    expect(() => decodeImage(bad, 'crc.png')).toThrow(ImageError);
    expect(() => decodeImage(bad, 'crc.png')).toThrow(/crc\.png: corrupt or unsupported PNG data/);
  });

  it('truncated JPEG and BMP → ImageError', () => {
    const rgba = new Uint8Array(8 * 8 * 4).fill(200);
    const jpg = new Uint8Array(jpegEncode({ width: 8, height: 8, data: rgba }, 90).data);
    expect(() => decodeImage(jpg.subarray(0, jpg.length - 20), 'cut.jpg')).toThrow(
      /cut\.jpg: truncated JPEG/,
    );
    const bmp = makeBmp({ w: 4, h: 4, bpp: 24, px: () => [1, 2, 3] });
    expect(() => decodeImage(bmp.subarray(0, bmp.length - 10), 'cut.bmp')).toThrow(/cut\.bmp: truncated BMP/);
    expect(() => decodeImage(bmp.subarray(0, 20), 'tiny.bmp')).toThrow(/tiny\.bmp: truncated BMP/);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('resizeLinear (OpenCV INTER_LINEAR, spec §6 step 3)', () => {
  it('4→2 along x averages pixels (0,1) and (2,3): x = (u+0.5)·2 − 0.5 = 0.5, 2.5', () => {
    const a = new Float32Array([0.1, 0.3, 0.6, 1.0]);
    const r = resizeLinear(a, 4, 1, 2, 1);
    expect(r[0]).toBeCloseTo(0.2, 7);
    expect(r[1]).toBeCloseTo(0.8, 7);
  });

  it('3→2: x = 0.25 and 1.75', () => {
    const a = new Float64Array([0, 0.4, 1]);
    const r = resizeLinear(a, 3, 1, 2, 1);
    expect(r[0]).toBe(Math.fround(0.75 * 0 + 0.25 * 0.4));
    expect(r[1]).toBe(Math.fround(0.25 * 0.4 + 0.75 * 1));
  });

  it('1024→256 samples exactly pixels 4u+1 and 4u+2 on each axis (2×2 average of each 4×4 block)', () => {
    const n = 1024;
    const a = new Float64Array(n * n);
    const r8 = lcgBytes(n * n, 3);
    for (let i = 0; i < a.length; i++) a[i] = r8[i]! / 255;
    const out = resizeLinear(a, n, n, 256, 256);
    let worst = 0;
    for (let v = 0; v < 256; v++)
      for (let u = 0; u < 256; u++) {
        const y0 = 4 * v + 1;
        const x0 = 4 * u + 1;
        const want =
          0.25 * (a[y0 * n + x0]! + a[y0 * n + x0 + 1]! + a[(y0 + 1) * n + x0]! + a[(y0 + 1) * n + x0 + 1]!);
        worst = Math.max(worst, Math.abs(out[v * 256 + u]! - Math.fround(want)));
      }
    expect(worst).toBe(0);
  });

  it('HWC RGB in, CHW out; 2× on both axes (OpenCV’s INTER_AREA shortcut) = block means', () => {
    const w = 4;
    const h = 2;
    const a = new Float32Array(w * h * 3);
    for (let i = 0; i < a.length; i++) a[i] = (i % 7) / 8 + (i % 3) / 16;
    const out = resizeLinear(a, w, h, 2, 1);
    for (let c = 0; c < 3; c++)
      for (let u = 0; u < 2; u++) {
        const px = (x: number, y: number) => a[(y * w + x) * 3 + c]!;
        const want = (px(2 * u, 0) + px(2 * u + 1, 0) + px(2 * u, 1) + px(2 * u + 1, 1)) / 4;
        expect(out[c * 2 + u]).toBeCloseTo(want, 6);
      }
  });

  it('same size is an exact HWC → CHW copy', () => {
    const a = new Float32Array(lcgBytes(2 * 3 * 3, 5)).map((v) => v / 255);
    const out = resizeLinear(a, 2, 3, 2, 3);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 3; y++)
        for (let x = 0; x < 2; x++) expect(out[c * 6 + y * 2 + x]).toBe(a[(y * 2 + x) * 3 + c]);
  });

  it('upsampling clamps at the edges: 2→4 gives a0, ¾a0+¼a1, ¼a0+¾a1, a1 on both axes', () => {
    const a0 = 0.2;
    const a1 = 0.6;
    const want = [a0, 0.75 * a0 + 0.25 * a1, 0.25 * a0 + 0.75 * a1, a1].map(Math.fround);
    expect(Array.from(resizeLinear(new Float32Array([a0, a1]).map(Math.fround), 2, 1, 4, 1))).toEqual(
      want.map((v) => expect.closeTo(v, 7)),
    );
    const col = resizeLinear(new Float64Array([a0, a1]), 1, 2, 1, 4);
    for (let i = 0; i < 4; i++) expect(col[i]).toBeCloseTo(want[i]!, 7);
    // spec formula on a 3×2 → 7×5 upsample, computed independently here
    const w = 3;
    const h = 2;
    const src = new Float64Array([0.1, 0.5, 0.9, 0.3, 0.2, 1.0]);
    const taps = (u: number, inn: number, out: number) => {
      const x = (u + 0.5) * (inn / out) - 0.5;
      let x0 = Math.floor(x);
      let f = x - x0;
      if (x0 < 0) {
        x0 = 0;
        f = 0;
      }
      if (x0 >= inn - 1) {
        x0 = inn - 1;
        f = 0;
      }
      return [x0, Math.min(x0 + 1, inn - 1), f] as const;
    };
    const got = resizeLinear(src, w, h, 7, 5);
    for (let v = 0; v < 5; v++)
      for (let u = 0; u < 7; u++) {
        const [x0, x1, fx] = taps(u, w, 7);
        const [y0, y1, fy] = taps(v, h, 5);
        const row = (y: number) => (1 - fx) * src[y * w + x0]! + fx * src[y * w + x1]!;
        expect(got[v * 7 + u]).toBeCloseTo((1 - fy) * row(y0) + fy * row(y1), 6);
      }
  });

  it('rejects inconsistent sizes with a clear message', () => {
    expect(() => resizeLinear(new Float32Array(10), 2, 2, 1, 1)).toThrow(
      /resizeLinear: input length 10 .*2×2/,
    );
    expect(() => resizeLinear(new Float32Array(12), 2, 2, 0, 1)).toThrow(
      /output width must be a positive integer/,
    );
  });
});

describe('PIL bilinear (antialiased) mask resize, hand-derived', () => {
  // 8 → 4: scale 2, support 2, taps per output: {0,1,2} weights 3/7,3/7,1/7; {1..4} and {3..6} 1/8,3/8,3/8,1/8;
  // {5,6,7} 1/7,3/7,3/7. In 22-bit fixed point: 3/7 → 1797559, 1/7 → 599186, 1/8 → 524288, 3/8 → 1572864.
  // Block input: 255 where x ≥ 3 and y ≥ 2.
  // Horizontal pass on a row 0,0,0,255,255,255,255,255 → 0, 255·(3/8+1/8) = 127.5 → rounds half up to 128, 255, 255.
  // Vertical pass on a column 0,0,a,a,a,a,a,a → a·1/7 (a=128 → 18.29 → 18; 255 → 36.4 → 36), a·7/8
  // (128 → 112, 255 → 223.1 → 223), a, a.
  const block8 = new Uint8Array(64).map((_, i) => (i % 8 >= 3 && Math.floor(i / 8) >= 2 ? 255 : 0));
  const want8 = [0, 18, 36, 36, 0, 112, 223, 223, 0, 128, 255, 255, 0, 128, 255, 255];

  it('8×8 → 4×4 block', () => {
    expect(Array.from(pilResizeBilinear8(block8, 8, 8, 4, 4))).toEqual(want8);
  });

  it('6×6 → 4×4 stripe (scale 1.5, support 1.5)', () => {
    // centres 0.75, 2.25, 3.75, 5.25; taps {0,1} 5/8,3/8; {1,2,3} 1/3,5/9,1/9; {2,3,4} 1/9,5/9,1/3; {4,5} 3/8,5/8.
    // Row 0,0,255,255,0,0 → 0, 255·(5/9+1/9) = 170, 170, 0. Column 0,0,0,170,170,170 → 0, 170/9 = 18.9 → 19,
    // 170·(5/9+1/3) = 151.1 → 151, 170.
    const stripe = new Uint8Array(36).map((_, i) =>
      (i % 6 === 2 || i % 6 === 3) && Math.floor(i / 6) >= 3 ? 255 : 0,
    );
    expect(Array.from(pilResizeBilinear8(stripe, 6, 6, 4, 4))).toEqual([
      0, 0, 0, 0, 0, 19, 19, 0, 0, 151, 151, 0, 0, 170, 170, 0,
    ]);
  });

  it('2×2 → 4×4 upscale (support 1, no antialias widening): 0,255 → 0, 64, 191, 255', () => {
    const r = pilResizeBilinear8(new Uint8Array([0, 255, 0, 255]), 2, 2, 4, 4);
    for (let y = 0; y < 4; y++) expect(Array.from(r.subarray(y * 4, y * 4 + 4))).toEqual([0, 64, 191, 255]);
  });

  it('nearest (PIL modes 1 and P): 8 → 4 picks source index floor((u + 0.5)·2) = 1, 3, 5, 7', () => {
    const src = new Uint8Array(64).map((_, i) => i);
    const r = pilResizeNearest8(src, 8, 8, 4, 4);
    const idx = [1, 3, 5, 7];
    expect(Array.from(r)).toEqual(idx.flatMap((y) => idx.map((x) => y * 8 + x)));
  });

  it('loadMask: 8-bit gray PNG → PIL bilinear → /255 > 0.5 (128 counts, 112 does not)', () => {
    const m = loadMask(pngjsEncode(8, 8, 0, block8), 'm.png', 4);
    expect(Array.from(m)).toEqual(want8.map((v) => (v / 255 > 0.5 ? 1 : 0)));
    expect(Array.from(m)).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1]);
  });

  it('loadMask: a 1-bit PNG is resized NEAREST as PIL does for mode 1', () => {
    // only pixel (1,1) set: nearest keeps it at (0,0); bilinear would give 255·(3/7)² ≈ 47 → 0
    const bits = new Array(64).fill(0);
    bits[9] = 1;
    const m = loadMask(makePng({ w: 8, h: 8, colorType: 0, depth: 1, samples: bits }), 'b.png', 4);
    expect(Array.from(m)).toEqual([1, ...new Array(15).fill(0)]);
  });

  it('loadMask: RGB masks use PIL luma (white → 1, pure red = 76 → 0); palette masks go nearest on colours', () => {
    const rgb = new Uint8Array(4 * 3);
    rgb.set([255, 255, 255], 0);
    rgb.set([255, 0, 0], 3);
    const m = loadMask(pngjsEncode(2, 2, 2, rgb), 'rgb.png', 2);
    expect(Array.from(m)).toEqual([1, 0, 0, 0]);
    const pal = makePng({
      w: 8,
      h: 8,
      colorType: 3,
      depth: 8,
      samples: Array.from({ length: 64 }, (_, i) => (i === 9 ? 1 : 0)),
      palette: [
        [0, 0, 0],
        [255, 255, 255],
      ],
    });
    expect(Array.from(loadMask(pal, 'p.png', 4))).toEqual([1, ...new Array(15).fill(0)]);
  });
});

// ---------------------------------------------------------------------------------------------------

const TIRE_ROOT = '/work/shared/datasets/mvtec3d-tire-half';

describe('discoverDataset: MVTec 3D-AD tire (real data)', () => {
  const fs = nodeFileSystem();
  const counts = (s: Sample[]) => {
    const c: Record<string, number> = {};
    for (const x of s) c[x.defectType] = (c[x.defectType] ?? 0) + 1;
    return c;
  };

  it('finds train / validation / test with masks matched by name', () => {
    for (const ds of [
      discoverDataset(fs, TIRE_ROOT),
      discoverDataset(fs, TIRE_ROOT, { category: 'tire' }),
      discoverDataset(fs, `${TIRE_ROOT}/tire/`, { layout: 'mvtec' }),
    ]) {
      expect(ds.layout).toBe('mvtec');
      expect(ds.category).toBe('tire');
      expect(ds.root).toBe(`${TIRE_ROOT}/tire`);
      expect(ds.train.length).toBe(210);
      expect(ds.validation.length).toBe(29);
      expect(counts(ds.test)).toEqual({ combined: 5, contamination: 28, cut: 27, good: 25, hole: 27 });
      expect(ds.warnings).toEqual([]);
      expect(ds.train[0]!.path).toBe(`${TIRE_ROOT}/tire/train/good/000.png`);
      expect(ds.train.every((s) => s.label === 0 && s.maskPath === null)).toBe(true);
      expect(ds.validation[28]!.path).toBe(`${TIRE_ROOT}/tire/validation/good/028.png`);
      for (const s of ds.test) {
        if (s.defectType === 'good') {
          expect([s.label, s.maskPath]).toEqual([0, null]);
        } else {
          const stem = s.path.slice(s.path.lastIndexOf('/') + 1, -4);
          expect(s.label).toBe(1);
          expect(s.maskPath).toBe(`${TIRE_ROOT}/tire/ground_truth/${s.defectType}/${stem}_mask.png`);
        }
      }
      // sorted: types in code-point order, names within a type too
      const paths = ds.test.map((s) => s.path);
      expect(paths).toEqual([...paths].sort());
    }
  });

  it('loads a sample: CHW [3,256,256] equal to the spec formula on the decoded pixels, and its mask', () => {
    const ds = discoverDataset(fs, TIRE_ROOT);
    const s = ds.test.find((x) => x.defectType === 'cut')!;
    const l = loadSample(fs, s, 256);
    expect([l.origWidth, l.origHeight]).toEqual([300, 400]);
    expect(l.rgb.length).toBe(3 * 256 * 256);
    const raw = decodeImage8(fs.readBytes(s.path), s.path);
    // spec §6 step 3 written out here, on a grid of output pixels
    const tap = (u: number, inn: number) => {
      const x = (u + 0.5) * (inn / 256) - 0.5;
      let x0 = Math.floor(x);
      let f = x - x0;
      if (x0 < 0) [x0, f] = [0, 0];
      if (x0 >= inn - 1) [x0, f] = [inn - 1, 0];
      return [x0, Math.min(x0 + 1, inn - 1), f] as const;
    };
    let worst = 0;
    for (let v = 0; v < 256; v += 5)
      for (let u = 0; u < 256; u += 3) {
        const [x0, x1, fx] = tap(u, 300);
        const [y0, y1, fy] = tap(v, 400);
        for (let c = 0; c < 3; c++) {
          const p = (x: number, y: number) => raw.rgb[(y * 300 + x) * 3 + c]! / 255;
          const row = (y: number) => (1 - fx) * p(x0, y) + fx * p(x1, y);
          worst = Math.max(
            worst,
            Math.abs(l.rgb[c * 65536 + v * 256 + u]! - ((1 - fy) * row(y0) + fy * row(y1))),
          );
        }
      }
    expect(worst).toBeLessThan(1e-7);
    expect(l.mask).not.toBeNull();
    const ones = l.mask!.reduce((a, b) => a + b, 0);
    expect(l.mask!.every((v) => v === 0 || v === 1)).toBe(true);
    expect(ones).toBeGreaterThan(0);
    expect(ones).toBeLessThan(256 * 256);
    const good = loadSample(fs, ds.test.find((x) => x.defectType === 'good')!, 64);
    expect([good.rgb.length, good.mask]).toEqual([3 * 64 * 64, null]);
  });
});

describe('discoverDataset: BTAD and plain folders (temp), errors', () => {
  let dir = '';
  const fs = nodeFileSystem();
  const png = pngjsEncode(W, H, 2, RGB);
  const maskPng = pngjsEncode(W, H, 0, new Uint8Array(W * H).fill(255));
  const bmp = makeBmp({ w: W, h: H, bpp: 24, px: () => [9, 99, 199] });
  const put = (rel: string, bytes: Uint8Array | string) => {
    const p = join(dir, rel);
    mkdirSync(p.slice(0, p.lastIndexOf('/')), { recursive: true });
    writeFileSync(p, bytes);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rdpp-data-'));
    // BTAD: two products
    for (const prod of ['01', '02']) {
      for (const n of ['0000', '0001', '0002']) put(`btad/${prod}/train/ok/${n}.bmp`, bmp);
      put(`btad/${prod}/test/ok/0000.bmp`, bmp);
      for (const n of ['0003', '0005']) put(`btad/${prod}/test/ko/${n}.bmp`, bmp);
      put(`btad/${prod}/ground_truth/ko/0003.png`, maskPng);
      put(`btad/${prod}/ground_truth/ko/0005.bmp`, bmp);
    }
    // plain folder
    for (const n of ['b.png', 'a.PNG', 'c.jpg']) put(`plain/good/${n}`, png);
    put('plain/good/notes.txt', 'not an image');
    put('plain/good/._a.png', 'mac resource fork');
    put('plain/anomalous/x1.png', png);
    put('plain/anomalous/x2.png', png);
    put('plain/masks/x1.png', maskPng);
    put('plain/masks/x2_mask.png', maskPng);
    // loose images, no masks
    for (const n of ['1.bmp', '2.bmp']) put(`loose/${n}`, bmp);
    put('loose/bad/9.png', png);
    // broken MVTec-likes
    put('mv/nomask/train/good/000.png', png);
    put('mv/nomask/test/crack/000.png', png);
    put('mv/nomask/test/crack/001.png', png);
    put('mv/nomask/ground_truth/crack/001_mask.png', maskPng);
    put('mv/nomask/ground_truth/crack/007_mask.png', maskPng);
    mkdirSync(join(dir, 'mv/empty/train/good'), { recursive: true });
    put('mv/empty/test/good/000.png', png);
    // a file set for loadBatch
    put('batch/good/ok1.png', png);
    put('batch/good/bad1.png', png.subarray(0, 40));
    put('batch/good/ok2.bmp', bmp);
    put('batch/good/bad2.png', 'garbage');
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('BTAD: train/ok, test/ok|ko, ground_truth/ko with .png or .bmp masks', () => {
    const ds = discoverDataset(fs, join(dir, 'btad'), { category: '02' });
    expect([ds.layout, ds.category, ds.root]).toEqual(['btad', '02', join(dir, 'btad/02')]);
    expect(ds.train.map((s) => s.path.slice(dir.length))).toEqual(
      ['0000', '0001', '0002'].map((n) => `/btad/02/train/ok/${n}.bmp`),
    );
    expect(ds.validation).toEqual([]);
    expect(ds.test.map((s) => [s.defectType, s.label, s.maskPath?.slice(dir.length)])).toEqual([
      ['ko', 1, '/btad/02/ground_truth/ko/0003.png'],
      ['ko', 1, '/btad/02/ground_truth/ko/0005.bmp'],
      ['ok', 0, undefined],
    ]);
    // a single product folder given directly
    const one = discoverDataset(fs, join(dir, 'btad/01'));
    expect([one.layout, one.category, one.train.length, one.test.length]).toEqual(['btad', '01', 3, 3]);
  });

  it('plain folder: good/ → train (images only, sorted), anomalous/ → test with same-stem masks', () => {
    const ds = discoverDataset(fs, join(dir, 'plain'));
    expect(ds.layout).toBe('folder');
    expect(ds.category).toBeUndefined();
    expect(ds.train.map((s) => s.path.slice(dir.length))).toEqual([
      '/plain/good/a.PNG',
      '/plain/good/b.png',
      '/plain/good/c.jpg',
    ]);
    expect(ds.test.map((s) => [s.label, s.defectType, s.maskPath?.slice(dir.length)])).toEqual([
      [1, 'anomalous', '/plain/masks/x1.png'],
      [1, 'anomalous', '/plain/masks/x2_mask.png'],
    ]);
    const loose = discoverDataset(fs, join(dir, 'loose'));
    expect(loose.train.map((s) => s.path.slice(dir.length))).toEqual(['/loose/1.bmp', '/loose/2.bmp']);
    expect(loose.test.map((s) => [s.defectType, s.maskPath])).toEqual([['bad', null]]);
  });

  it('errors name the folder and what was expected', () => {
    expect(() => discoverDataset(fs, join(dir, 'btad'), { category: 'x' })).toThrow(
      new DatasetError(`no category 'x' under ${join(dir, 'btad')} (found: 01, 02)`),
    );
    expect(() => discoverDataset(fs, join(dir, 'btad'))).toThrow(/holds several categories \(01, 02\)/);
    expect(() => discoverDataset(fs, join(dir, 'nope'))).toThrow(/dataset folder not found: .*nope/);
    expect(() => discoverDataset(fs, join(dir, 'mv/empty'))).toThrow(
      `no training images in ${join(dir, 'mv/empty/train/good')} (expected .png .jpg .jpeg .bmp .tif .tiff .webp files)`,
    );
    let err: Error | undefined;
    try {
      discoverDataset(fs, join(dir, 'mv'), { category: 'nomask' });
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expect(err!.message).toContain('1 anomalous test image(s) have no ground-truth mask');
    expect(err!.message).toContain(
      `${join(dir, 'mv/nomask/test/crack/000.png')} (expected ${join(dir, 'mv/nomask/ground_truth/crack/000_mask.png')})`,
    );
    // without requiring masks: the image is kept without one, and the stray mask is reported
    const lax = discoverDataset(fs, join(dir, 'mv'), { category: 'nomask', requireMasks: false });
    expect(lax.test.map((s) => s.maskPath?.slice(dir.length) ?? null)).toEqual([
      null,
      '/mv/nomask/ground_truth/crack/001_mask.png',
    ]);
    expect(lax.warnings.join('\n')).toMatch(/1 mask file\(s\) in .*crack match no image: 007_mask\.png/);
    expect(() => discoverDataset(fs, join(dir, 'plain'), { layout: 'mvtec' })).toThrow(
      /MVTec layout: missing folder .*plain\/train\/good/,
    );
  });

  it('loadBatch: throw lists every bad file; skip keeps the good ones in order', async () => {
    const ds = discoverDataset(fs, join(dir, 'batch'));
    expect(ds.train.length).toBe(4);
    const missing: Sample = {
      path: join(dir, 'batch/good/missing.png'),
      label: 0,
      defectType: 'good',
      maskPath: null,
    };
    const all = [...ds.train, missing];
    let err: unknown;
    try {
      await loadBatch(fs, all, 32, { onError: 'throw' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LoadError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^3 of 5 image\(s\) could not be loaded/);
    for (const n of ['bad1.png', 'bad2.png', 'missing.png'])
      expect(msg).toContain(join(dir, `batch/good/${n}`));
    expect(msg).toMatch(/bad1\.png: truncated PNG/);
    expect(msg).toMatch(/missing\.png: cannot read the file/);

    const r = await loadBatch(fs, all, 32, { onError: 'skip' });
    expect(r.items.map((s) => s.path.slice(-7))).toEqual(['ok1.png', 'ok2.bmp']);
    expect(r.failures.map((f) => f.path.slice(-8))).toEqual(['bad1.png', 'bad2.png', 'sing.png']);
    expect(r.samples[1]!.rgb.length).toBe(3 * 32 * 32);
    // a uniform BMP stays uniform through the resize
    expect(r.samples[1]!.rgb[0]).toBe(Math.fround(9 / 255));
    expect(r.samples[1]!.rgb[2 * 1024 + 517]).toBe(Math.fround(199 / 255));
  });

  it('a mask whose size differs from its image is an error naming both', () => {
    const fsMem: FileSystem = {
      list: () => [],
      isDir: () => false,
      readBytes: (p) => (p.endsWith('_mask.png') ? pngjsEncode(2, 2, 0, new Uint8Array(4)) : png),
    };
    expect(() =>
      loadSample(fsMem, { path: 'i.png', label: 1, defectType: 'x', maskPath: 'i_mask.png' }, 8),
    ).toThrow(/i_mask\.png: mask is 2×2 but its image i\.png is 5×3/);
  });
});
