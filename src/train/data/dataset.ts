/**
 * Loading samples: decode → OpenCV-style bilinear resize to size×size (CHW float32 in [0, 1], spec §6
 * steps 1–3; mean/std normalisation is the model's job) and, for anomalous images, the ground-truth mask
 * → PIL-style antialiased bilinear resize → /255 > 0.5 (spec §6 "Ground-truth masks").
 *
 * Masks that are not plain 8-bit gray, converted so that the result is sensible (the reference has no
 * defined behaviour for them: its ToTensor would give 3 channels for RGB or palette INDICES for 'P'):
 * - RGB(A) / gray+alpha: alpha dropped; colour → PIL 'L' luma (R·19595 + G·38470 + B·7471 + 2^15) >> 16;
 * - palette ('P'): palette colours → luma, then NEAREST resize, because PIL resizes 'P' images with
 *   NEAREST whatever filter is asked for;
 * - 1-bit ('1': 1-bit gray PNG, black/white BMP): NEAREST resize, as PIL silently does for mode '1'
 *   (spec §6 caveat); values are 0/255 so the threshold is unaffected;
 * - 16-bit gray: high byte (the decoder's rule), then bilinear as 'L'.
 * A mask whose size differs from its image's is an error (it is almost always a mis-paired file).
 *
 * No Node API: file bytes come through the FileSystem interface, or call prepareSample with bytes.
 */
import { decodeImage8, type Image8, ImageError } from './decode.js';
import type { FileSystem, Sample } from './layouts.js';
import { pilResizeBilinear8, pilResizeNearest8, resizeLinear } from './resize.js';

export interface LoadedSample {
  /** CHW [3, size, size], RGB in [0, 1] */
  rgb: Float32Array;
  /** size×size of 0/1; null for normal images (and anomalous ones without a mask) */
  mask: Uint8Array | null;
  origWidth: number;
  origHeight: number;
}

export interface LoadFailure {
  path: string;
  reason: string;
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size <= 0)
    throw new Error(`image size must be a positive integer, got ${size}`);
}

/** 8-bit gray plane of a decoded mask (see the header for the conversion rules). */
export function maskGray(img: Image8): Uint8Array {
  const n = img.width * img.height;
  const g = new Uint8Array(n);
  const p = img.rgb;
  if (img.pilMode === 'L' || img.pilMode === '1') {
    for (let i = 0; i < n; i++) g[i] = p[i * 3]!;
  } else {
    for (let i = 0; i < n; i++)
      g[i] = (p[i * 3]! * 19595 + p[i * 3 + 1]! * 38470 + p[i * 3 + 2]! * 7471 + 0x8000) >>> 16;
  }
  return g;
}

function maskFromImage(img: Image8, size: number): Uint8Array {
  const g = maskGray(img);
  const nearest = img.pilMode === '1' || img.pilMode === 'P';
  const r = (nearest ? pilResizeNearest8 : pilResizeBilinear8)(g, img.width, img.height, size, size);
  const out = new Uint8Array(size * size);
  for (let i = 0; i < out.length; i++) out[i] = r[i]! / 255 > 0.5 ? 1 : 0;
  return out;
}

/**
 * A ground-truth mask resized to size×size like the reference (PIL bilinear with antialiasing, uint8
 * rounding per pass), then binarised: v/255 > 0.5 → 1, else 0.
 */
export function loadMask(bytes: Uint8Array, source: string, size: number): Uint8Array {
  checkSize(size);
  return maskFromImage(decodeImage8(bytes, source), size);
}

/** Decode and resize one image: CHW float32 [3, size, size] in [0, 1] plus its original size. */
export function prepareImage(
  bytes: Uint8Array,
  source: string,
  size: number,
): { rgb: Float32Array; width: number; height: number } {
  checkSize(size);
  const img = decodeImage8(bytes, source);
  // v/255 in float64 like the reference (spec §6 step 2), so the result is float32(OpenCV's) exactly
  const n = img.rgb.length;
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) f[i] = img.rgb[i]! / 255;
  return { rgb: resizeLinear(f, img.width, img.height, size, size), width: img.width, height: img.height };
}

/**
 * The pure part of loadSample, for callers that read bytes themselves (a browser reading dropped files
 * asynchronously): image bytes and, for anomalous images, mask bytes.
 */
export function prepareSample(
  imageBytes: Uint8Array,
  maskBytes: Uint8Array | null,
  sample: Pick<Sample, 'path' | 'maskPath'>,
  size: number,
): LoadedSample {
  const im = prepareImage(imageBytes, sample.path, size);
  let mask: Uint8Array | null = null;
  if (maskBytes) {
    const source = sample.maskPath ?? `mask of ${sample.path}`;
    const m = decodeImage8(maskBytes, source);
    if (m.width !== im.width || m.height !== im.height)
      throw new ImageError(
        source,
        `mask is ${m.width}×${m.height} but its image ${sample.path} is ${im.width}×${im.height} (wrong pairing?)`,
      );
    mask = maskFromImage(m, size);
  }
  return { rgb: im.rgb, mask, origWidth: im.width, origHeight: im.height };
}

function read(fs: FileSystem, path: string): Uint8Array {
  try {
    return fs.readBytes(path);
  } catch (e) {
    throw new ImageError(path, `cannot read the file: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Read, decode and resize one sample (and its mask when it has one). Throws ImageError naming the file. */
export function loadSample(fs: FileSystem, sample: Sample, size: number): LoadedSample {
  const img = read(fs, sample.path);
  const mask = sample.maskPath ? read(fs, sample.maskPath) : null;
  return prepareSample(img, mask, sample, size);
}

export interface LoadBatchOptions {
  /** 'throw' (default): after trying every sample, one error listing every bad file; 'skip': leave them out */
  onError?: 'throw' | 'skip';
  /** called after each sample */
  onProgress?: (done: number, total: number) => void;
}

export interface LoadedBatch {
  /** the loaded samples, in input order, bad ones left out */
  samples: LoadedSample[];
  /** the Sample each entry of `samples` came from */
  items: Sample[];
  failures: LoadFailure[];
}

/** Thrown by loadBatch with onError 'throw': lists every file that failed. */
export class LoadError extends Error {
  override name = 'LoadError';
  constructor(
    readonly failures: LoadFailure[],
    total: number,
  ) {
    const shown = failures.slice(0, 50).map((f) => `  ${f.path}: ${f.reason}`);
    if (failures.length > 50) shown.push(`  … and ${failures.length - 50} more`);
    super(`${failures.length} of ${total} image(s) could not be loaded:\n${shown.join('\n')}`);
  }
}

/** Why a sample failed, without repeating its own path (a mask's failure names the mask). */
export function reasonOf(e: unknown, sample: Pick<Sample, 'path'>): string {
  if (e instanceof ImageError) return e.source === sample.path ? e.reason : `${e.source}: ${e.reason}`;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Load many samples. Yields to the event loop now and then so progress output can render. Memory: one
 * Float32Array of 3·size² per sample (768 KiB at 256) plus a size² mask for anomalous ones.
 */
export async function loadBatch(
  fs: FileSystem,
  samples: Sample[],
  size: number,
  opts: LoadBatchOptions = {},
): Promise<LoadedBatch> {
  checkSize(size);
  const onError = opts.onError ?? 'throw';
  if (onError !== 'throw' && onError !== 'skip')
    throw new Error(`loadBatch: onError must be 'throw' or 'skip', got '${onError}'`);
  const out: LoadedBatch = { samples: [], items: [], failures: [] };
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    try {
      out.samples.push(loadSample(fs, s, size));
      out.items.push(s);
    } catch (e) {
      out.failures.push({ path: s.path, reason: reasonOf(e, s) });
    }
    opts.onProgress?.(i + 1, samples.length);
    if ((i & 15) === 15) await new Promise<void>((r) => setTimeout(r, 0));
  }
  if (onError === 'throw' && out.failures.length > 0) throw new LoadError(out.failures, samples.length);
  return out;
}
