/**
 * Browser image decoding: File/Blob → 8-bit RGB via createImageBitmap (no colour-space conversion, no
 * premultiplication, so PNG bytes come through unchanged) and a canvas's getImageData. TIFF, which most
 * browsers cannot decode, goes through the same JS decoder as Node (src/train/data/tiff.ts).
 */

import { type Rgb8, rgbaToRgb8 } from '../../pipeline/images.js';
import { decodeTiffRgb } from '../../train/data/tiff.js';

function isTiff(b: Uint8Array): boolean {
  return (
    (b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0) ||
    (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 0x2a)
  );
}

export async function decodeImageBlob(blob: Blob, name: string): Promise<Rgb8> {
  if (isTiff(new Uint8Array(await blob.slice(0, 4).arrayBuffer()))) {
    try {
      const t = decodeTiffRgb(new Uint8Array(await blob.arrayBuffer()));
      return { width: t.width, height: t.height, rgb: t.rgb };
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`);
    }
  }
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new Error(`${name}: not an image the browser can decode (${(e as Error).message})`);
  }
  const { width, height } = bmp;
  let data: Uint8ClampedArray;
  if (typeof OffscreenCanvas !== 'undefined') {
    const c = new OffscreenCanvas(width, height);
    const ctx = c.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new Error('no 2D canvas context');
    ctx.drawImage(bmp, 0, 0);
    data = ctx.getImageData(0, 0, width, height).data;
  } else {
    const c = document.createElement('canvas');
    c.width = width;
    c.height = height;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new Error('no 2D canvas context');
    ctx.drawImage(bmp, 0, 0);
    data = ctx.getImageData(0, 0, width, height).data;
  }
  bmp.close();
  return rgbaToRgb8(data, width, height);
}

const IMAGE_RE = /\.(png|jpe?g|bmp|webp|gif|tiff?)$/i;

/** Image files among `files` (by type or extension), sorted by path for a stable order. */
export function imageFiles(files: Iterable<File>): File[] {
  const out = [...files].filter((f) => f.type.startsWith('image/') || IMAGE_RE.test(f.name));
  const path = (f: File) => (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
  return out.sort((a, b) => (path(a) < path(b) ? -1 : path(a) > path(b) ? 1 : 0));
}

/** All files of a drop, walking dropped folders (webkitGetAsEntry). */
export async function droppedFiles(dt: DataTransfer): Promise<File[]> {
  const entries = Array.from(dt.items)
    .map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null))
    .filter((e): e is FileSystemEntry => e !== null);
  if (entries.length === 0) return Array.from(dt.files);
  const out: File[] = [];
  const walk = async (e: FileSystemEntry): Promise<void> => {
    if (e.isFile) {
      out.push(await new Promise<File>((res, rej) => (e as FileSystemFileEntry).file(res, rej)));
    } else if (e.isDirectory) {
      const reader = (e as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const c of batch) await walk(c);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}
