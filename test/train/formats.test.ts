/**
 * The formats inspection cameras write (issue 15), built here: baseline TIFF (uncompressed and Deflate,
 * 8/16-bit, gray/RGB, WhiteIsZero, palette, 1-bit) with a small writer below, WebP through libwebp's own
 * encoder (lossless, so the decode must give the exact pixels), and formats we refuse with a clear reason.
 * CPU only.
 */
import { deflateSync } from 'node:zlib';
import webpEncoderFactory from '@jsquash/webp/codec/enc/webp_enc.js';
import encoderWasm from '@jsquash/webp/codec/enc/webp_enc.wasm';
import { defaultOptions as webpDefaults } from '@jsquash/webp/meta.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { initImageCodecs } from '../../src/platform/wasm-codecs.js';
import { decodeImage8, sniffFormat } from '../../src/train/data/index.js';
import { decodeImageBlob, imageFiles } from '../../src/web/app/decode.js';

beforeAll(initImageCodecs);

const W = 5;
const H = 3;

interface TiffSpec {
  bits: 1 | 8 | 16 | 32;
  spp: number;
  photometric: number;
  samples: number[];
  deflate?: boolean;
  colormap?: number[];
  sampleFormat?: number;
}

/** A little-endian baseline TIFF, one strip; `samples` row-major, interleaved. */
function tiff(t: TiffSpec): Uint8Array {
  let data: Uint8Array;
  if (t.bits === 1) {
    const rowBytes = Math.ceil(W / 8);
    data = new Uint8Array(rowBytes * H);
    t.samples.forEach((v, i) => {
      const y = Math.floor(i / W);
      const x = i % W;
      if (v) data[y * rowBytes + (x >> 3)]! |= 0x80 >> (x & 7);
    });
  } else if (t.bits === 16) {
    data = new Uint8Array(t.samples.length * 2);
    const dv = new DataView(data.buffer);
    t.samples.forEach((v, i) => {
      dv.setUint16(i * 2, v, true);
    });
  } else if (t.bits === 32) {
    data = new Uint8Array(new Float32Array(t.samples).buffer);
  } else data = Uint8Array.from(t.samples);
  if (t.deflate) data = new Uint8Array(deflateSync(data));
  const entries: [number, number, number, number[]][] = [
    [256, 3, 1, [W]],
    [257, 3, 1, [H]],
    [258, 3, t.spp, new Array(t.spp).fill(t.bits)],
    [259, 3, 1, [t.deflate ? 8 : 1]],
    [262, 3, 1, [t.photometric]],
    [273, 4, 1, [0]], // strip offset, patched below
    [277, 3, 1, [t.spp]],
    [278, 3, 1, [H]],
    [279, 4, 1, [data.length]],
  ];
  if (t.colormap) entries.push([320, 3, t.colormap.length, t.colormap]);
  if (t.sampleFormat) entries.push([339, 3, t.spp, new Array(t.spp).fill(t.sampleFormat)]);
  entries.sort((a, b) => a[0] - b[0]);
  const ifdSize = 2 + entries.length * 12 + 4;
  const extra = entries.map((e) => (e[2] * (e[1] === 3 ? 2 : 4) > 4 ? e[2] * (e[1] === 3 ? 2 : 4) : 0));
  const extraTotal = extra.reduce((a, b) => a + b, 0);
  const dataAt = 8 + ifdSize + extraTotal;
  const out = new Uint8Array(dataAt + data.length);
  const dv = new DataView(out.buffer);
  out.set([0x49, 0x49, 42, 0]);
  dv.setUint32(4, 8, true);
  dv.setUint16(8, entries.length, true);
  let extraAt = 8 + ifdSize;
  entries.forEach(([tag, type, count, values], k) => {
    const e = 10 + k * 12;
    dv.setUint16(e, tag, true);
    dv.setUint16(e + 2, type, true);
    dv.setUint32(e + 4, count, true);
    const vals = tag === 273 ? [dataAt] : values;
    const size = type === 3 ? 2 : 4;
    let at = e + 8;
    if (count * size > 4) {
      dv.setUint32(e + 8, extraAt, true);
      at = extraAt;
      extraAt += count * size;
    }
    vals.forEach((v, i) => {
      if (size === 2) dv.setUint16(at + i * 2, v, true);
      else dv.setUint32(at + i * 4, v, true);
    });
  });
  out.set(data, dataAt);
  return out;
}

const ramp = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

describe('TIFF', () => {
  it('8-bit RGB, uncompressed and Deflate: the exact samples', () => {
    const samples = ramp(W * H * 3, (i) => (i * 17) & 255);
    for (const deflate of [false, true]) {
      const d = decodeImage8(tiff({ bits: 8, spp: 3, photometric: 2, samples, deflate }), 'a.tif');
      expect(d.format).toBe('tiff');
      expect([d.width, d.height, d.pilMode]).toEqual([W, H, 'RGB']);
      expect(Array.from(d.rgb)).toEqual(samples);
    }
  });

  it('16-bit RGB → (v + 128) / 257 and 16-bit gray → high byte, as libtiff’s RGBA reader (OpenCV)', () => {
    const vals = [0, 128, 129, 385, 32896, 65279, 65535, 1000, 60000, 257, 514, 255, 256, 40000, 12345];
    const rgb = decodeImage8(
      tiff({ bits: 16, spp: 3, photometric: 2, samples: ramp(W * H * 3, (i) => vals[i % vals.length]!) }),
      'rgb16.tif',
    );
    expect(Array.from(rgb.rgb.subarray(0, 8))).toEqual([0, 0, 1, 1, 128, 254, 255, 4]);
    const gray = decodeImage8(tiff({ bits: 16, spp: 1, photometric: 1, samples: vals }), 'g16.tif');
    expect(gray.pilMode).toBe('L');
    expect(Array.from(gray.rgb.subarray(0, 15)).filter((_, i) => i % 3 === 0)).toEqual(
      vals.slice(0, 5).map((v) => v >> 8),
    );
    expect(gray.rgb[0]).toBe(gray.rgb[1]);
  });

  it('8-bit gray (BlackIsZero and WhiteIsZero), 1-bit bilevel and palette', () => {
    const g = ramp(W * H, (i) => i * 10);
    const black = decodeImage8(tiff({ bits: 8, spp: 1, photometric: 1, samples: g }), 'g.tif');
    expect(Array.from(black.rgb.filter((_, i) => i % 3 === 0))).toEqual(g);
    const white = decodeImage8(tiff({ bits: 8, spp: 1, photometric: 0, samples: g }), 'w.tif');
    expect(Array.from(white.rgb.filter((_, i) => i % 3 === 0))).toEqual(g.map((v) => 255 - v));
    const bits = ramp(W * H, (i) => i % 2);
    const bi = decodeImage8(tiff({ bits: 1, spp: 1, photometric: 1, samples: bits }), 'b.tif');
    expect(bi.pilMode).toBe('1');
    expect(Array.from(bi.rgb.filter((_, i) => i % 3 === 0))).toEqual(bits.map((v) => v * 255));
    // a 256-entry 16-bit colour map (all reds, then greens, then blues); index i → (i·257, 0, 65535 − i·257)
    const map = [...ramp(256, (i) => i * 257), ...ramp(256, () => 0), ...ramp(256, (i) => 65535 - i * 257)];
    const idx = ramp(W * H, (i) => i * 16);
    const pal = decodeImage8(tiff({ bits: 8, spp: 1, photometric: 3, samples: idx, colormap: map }), 'p.tif');
    expect(pal.pilMode).toBe('P');
    expect(Array.from(pal.rgb.subarray(0, 6))).toEqual([0, 0, 255, 16, 0, 239]);
  });

  it('the browser app decodes TIFF with the same decoder (browsers mostly cannot) and lists .tif files', async () => {
    const samples = ramp(W * H * 3, (i) => (i * 7) & 255);
    const bytes = tiff({ bits: 8, spp: 3, photometric: 2, samples, deflate: true });
    const d = await decodeImageBlob(new Blob([Uint8Array.from(bytes)]), 'cam.tif');
    expect([d.width, d.height, Array.from(d.rgb)]).toEqual([W, H, samples]);
    await expect(
      decodeImageBlob(new Blob([Uint8Array.from(bytes.subarray(0, 40))]), 'cut.tif'),
    ).rejects.toThrow(/^cut\.tif: /);
    const names = ['b.TIFF', 'a.tif', 'c.txt'].map((n) => new File([new Uint8Array(1)], n));
    expect(imageFiles(names).map((f) => f.name)).toEqual(['a.tif', 'b.TIFF']);
  });

  it('float TIFF is refused with what to do', () => {
    const f = tiff({
      bits: 32,
      spp: 1,
      photometric: 1,
      samples: ramp(W * H, (i) => i / 10),
      sampleFormat: 3,
    });
    expect(() => decodeImage8(f, 'f.tif')).toThrow(
      /f\.tif: floating-point TIFF \(32-bit float\) is not supported; convert it/,
    );
  });
});

describe('WebP', () => {
  it('lossless WebP from libwebp’s encoder decodes to the exact pixels; alpha is dropped', async () => {
    const enc: Record<string, unknown> = {
      noInitialRun: true,
      instantiateWasm: (imports: WebAssembly.Imports, done: (i: WebAssembly.Instance) => void) => {
        const i = new WebAssembly.Instance(new WebAssembly.Module(encoderWasm), imports);
        done(i);
        return i.exports;
      },
    };
    await webpEncoderFactory(enc);
    const w = 7;
    const h = 4;
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i % 4 === 3 ? (i * 5) & 255 : (i * 29) & 255));
    const bytes = (enc.encode as (d: Uint8Array, w: number, h: number, o: object) => Uint8Array)(rgba, w, h, {
      ...webpDefaults,
      lossless: 1,
      exact: 1,
    });
    expect(sniffFormat(bytes)).toBe('webp');
    const d = decodeImage8(bytes, 'a.webp');
    expect([d.format, d.width, d.height]).toEqual(['webp', w, h]);
    expect(Array.from(d.rgb)).toEqual(Array.from(rgba.filter((_, i) => i % 4 !== 3)));
  });

  it('a corrupt WebP names the file and libwebp’s verdict', () => {
    const bad = new TextEncoder().encode('RIFF\x10\x00\x00\x00WEBPVP8 junkjunk');
    expect(() => decodeImage8(bad, 'bad.webp')).toThrow(/bad\.webp: corrupt or unsupported WEBP data/);
  });
});
