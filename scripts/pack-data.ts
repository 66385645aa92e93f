/**
 * Packs an MVTec-layout category for a machine that takes few bytes along (a GPU server reached with a
 * 64 MiB carry limit): every image resized to the training size exactly as training resizes it (OpenCV
 * bilinear), rounded to uint8 (what the official run's pre-resizing did too), written as PNG (lossless)
 * or JPEG (quality Q, no chroma subsampling); masks as PNG after the training's own mask transform. Prints
 * the size and the error the encoding adds (PSNR against the uint8 images), so a report can say what the
 * packing changed.
 *
 *   npx esbuild scripts/pack-data.ts --bundle --platform=node --format=esm --outfile=/tmp/pack-data.mjs
 *   node /tmp/pack-data.mjs <root> <category> <out> [--size 256] [--format jpeg|png] [--quality 95]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import jpeg from 'jpeg-js';
import { nodeFileSystem } from '../src/platform/files.js';
import { encodePng } from '../src/platform/png.js';
import { discoverDataset, loadBatch, type Sample } from '../src/train/data/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const [root, category, out] = process.argv.slice(2);
  if (!root || !category || !out) {
    console.error('usage: pack-data <root> <category> <out> [--size 256] [--format jpeg|png] [--quality 95]');
    process.exit(2);
  }
  const size = Number(arg('size', '256'));
  const format = arg('format', 'jpeg');
  const quality = Number(arg('quality', '95'));
  const fs = nodeFileSystem();
  const ds = discoverDataset(fs, resolve(root), { category });
  const catRoot = resolve(root, category);
  const dest = resolve(out, category);
  let bytes = 0;
  let sqErr = 0;
  let values = 0;
  const write = (path: string, data: Uint8Array) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, data);
    bytes += data.byteLength;
  };
  const splits: [string, Sample[]][] = [
    ['train', ds.train],
    ['validation', ds.validation],
    ['test', ds.test],
  ];
  for (const [name, samples] of splits) {
    const loaded = await loadBatch(fs, samples, size, { onError: 'throw' });
    loaded.samples.forEach((l, k) => {
      const item = loaded.items[k]!;
      const rel = relative(catRoot, item.path);
      const hw = size * size;
      const rgb = new Uint8Array(hw * 3);
      for (let p = 0; p < hw; p++)
        for (let c = 0; c < 3; c++)
          rgb[p * 3 + c] = Math.round(Math.min(1, Math.max(0, l.rgb[c * hw + p]!)) * 255);
      if (format === 'png') write(join(dest, rel.replace(/\.[^.]+$/, '.png')), encodePng(size, size, rgb, 3));
      else {
        const rgba = new Uint8Array(hw * 4);
        for (let p = 0; p < hw; p++) {
          rgba.set(rgb.subarray(p * 3, p * 3 + 3), p * 4);
          rgba[p * 4 + 3] = 255;
        }
        const enc = jpeg.encode({ data: rgba, width: size, height: size }, quality).data;
        write(join(dest, rel.replace(/\.[^.]+$/, '.jpg')), enc);
        const back = jpeg.decode(enc, { useTArray: true, formatAsRGBA: true }).data;
        for (let p = 0; p < hw; p++)
          for (let c = 0; c < 3; c++) {
            const d = back[p * 4 + c]! - rgb[p * 3 + c]!;
            sqErr += d * d;
            values++;
          }
      }
      if (l.mask && item.maskPath) {
        const m = new Uint8Array(l.mask.length);
        for (let i = 0; i < m.length; i++) m[i] = l.mask[i] ? 255 : 0;
        write(join(dest, relative(catRoot, item.maskPath)), encodePng(size, size, m, 1));
      }
    });
    console.error(`${name}: ${loaded.samples.length} images`);
  }
  const psnr = values ? 10 * Math.log10((255 * 255) / (sqErr / values)) : Number.POSITIVE_INFINITY;
  console.log(
    JSON.stringify({
      out: dest,
      size,
      format,
      quality: format === 'jpeg' ? quality : null,
      megabytes: +(bytes / 1e6).toFixed(2),
      psnr_db_vs_uint8: +psnr.toFixed(2),
      source: basename(catRoot),
    }),
  );
}

await main();
