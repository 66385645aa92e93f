/**
 * Heatmap overlays of anomaly maps on the original images (predict's overlays, the report's panels).
 * Platform-neutral: 8-bit RGB (HWC) bytes in, 8-bit RGB bytes out; PNG encoding is the caller's.
 *
 * The map (computed at the model's square input size) is upsampled to the ORIGINAL image size with
 * bilinear interpolation using half-pixel centres (src = (dst + 0.5)·in/out − 0.5, clamped at the
 * borders) — the inverse of the OpenCV INTER_LINEAR resize the input went through, so the map lines up
 * with the image whatever its aspect ratio. Values are mapped to [0, 1] with a FIXED range (from the
 * decision's normal statistics, or given), so colours mean the same in every image, then coloured with a
 * jet-like map (blue → cyan → green → yellow → red) and alpha-blended onto the image.
 */

export type Rgb = [number, number, number];

export interface RgbImage {
  width: number;
  height: number;
  /** HWC 8-bit RGB, length width·height·3 */
  rgb: Uint8Array;
}

/** Jet-like colour of v ∈ [0, 1] (clamped): piecewise linear through blue, cyan, green, yellow, red. */
export function jet(v: number): Rgb {
  const x = Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0));
  const c = (f: number) => Math.round(255 * Math.min(1, Math.max(0, f)));
  // classic matlab jet: r, g, b are trapezoids over [0, 1]
  return [c(1.5 - Math.abs(4 * x - 3)), c(1.5 - Math.abs(4 * x - 2)), c(1.5 - Math.abs(4 * x - 1))];
}

/** Bilinear upsampling (half-pixel centres, edge clamp) of a mapW×mapH map to outW×outH. */
export function upsampleMap(
  map: ArrayLike<number>,
  mapW: number,
  mapH: number,
  outW: number,
  outH: number,
): Float32Array {
  if (map.length !== mapW * mapH)
    throw new Error(`upsampleMap: map has ${map.length} values, expected ${mapW}×${mapH} = ${mapW * mapH}`);
  if (!(outW > 0 && outH > 0)) throw new Error(`upsampleMap: bad output size ${outW}×${outH}`);
  const coeffs = (inN: number, outN: number) => {
    const i0 = new Int32Array(outN);
    const i1 = new Int32Array(outN);
    const w1 = new Float32Array(outN);
    for (let o = 0; o < outN; o++) {
      const s = Math.min(Math.max((o + 0.5) * (inN / outN) - 0.5, 0), inN - 1);
      const f = Math.floor(s);
      i0[o] = f;
      i1[o] = Math.min(f + 1, inN - 1);
      w1[o] = s - f;
    }
    return { i0, i1, w1 };
  };
  const cx = coeffs(mapW, outW);
  const cy = coeffs(mapH, outH);
  const out = new Float32Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const r0 = cy.i0[y]! * mapW;
    const r1 = cy.i1[y]! * mapW;
    const wy = cy.w1[y]!;
    for (let x = 0; x < outW; x++) {
      const a = cx.i0[x]!;
      const b = cx.i1[x]!;
      const wx = cx.w1[x]!;
      const top = map[r0 + a]! * (1 - wx) + map[r0 + b]! * wx;
      const bot = map[r1 + a]! * (1 - wx) + map[r1 + b]! * wx;
      out[y * outW + x] = top * (1 - wy) + bot * wy;
    }
  }
  return out;
}

export interface OverlayOptions {
  /** map value drawn as the bottom (blue) and top (red) of the colour map; values outside are clamped */
  min: number;
  max: number;
  /** heatmap opacity, default 0.5 */
  alpha?: number;
}

/**
 * The anomaly map (mapW×mapH, usually the model's size×size) over `image` at the image's own resolution:
 * RGB bytes of image.width × image.height.
 */
export function overlayHeatmap(
  image: RgbImage,
  map: ArrayLike<number>,
  mapW: number,
  mapH: number,
  opts: OverlayOptions,
): RgbImage {
  const { width, height } = image;
  if (image.rgb.length !== width * height * 3)
    throw new Error(`overlayHeatmap: image has ${image.rgb.length} bytes, expected ${width}×${height}×3`);
  if (!(Number.isFinite(opts.min) && Number.isFinite(opts.max) && opts.max > opts.min))
    throw new Error(
      `overlayHeatmap: colour range must be finite with max > min, got [${opts.min}, ${opts.max}]`,
    );
  const alpha = opts.alpha ?? 0.5;
  const up = upsampleMap(map, mapW, mapH, width, height);
  // 256-entry colour table
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) lut.set(jet(i / 255), i * 3);
  const span = opts.max - opts.min;
  const out = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    const v = (up[p]! - opts.min) / span;
    const li = Math.round(Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * 255) * 3;
    for (let c = 0; c < 3; c++)
      out[p * 3 + c] = Math.round((1 - alpha) * image.rgb[p * 3 + c]! + alpha * lut[li + c]!);
  }
  return { width, height, rgb: out };
}

/** A 0/1 (or 0/255) mask as a black/white RGB image. */
export function maskImage(mask: ArrayLike<number>, width: number, height: number): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) if (mask[i]! > 0) rgb.fill(255, i * 3, i * 3 + 3);
  return { width, height, rgb };
}
