/**
 * Images as the model takes them, the same in Node and in the browser: 8-bit RGB (from any decoder, or a
 * canvas's RGBA) resized exactly like the Node data pipeline into the CHW float32 model input.
 */
import { resizeLinear } from '../train/data/resize.js';

/** 8-bit RGB image, HWC. */
export interface Rgb8 {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** The model input: v/255 in float64, OpenCV INTER_LINEAR resize to size×size → CHW float32 (as Node). */
export function modelInput(img: Rgb8, size: number): Float32Array {
  const f = new Float64Array(img.rgb.length);
  for (let i = 0; i < f.length; i++) f[i] = img.rgb[i]! / 255;
  return resizeLinear(f, img.width, img.height, size, size);
}

/** RGBA (canvas getImageData) → RGB bytes. */
export function rgbaToRgb8(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): Rgb8 {
  const n = width * height;
  if (rgba.length !== n * 4)
    throw new Error(`rgbaToRgb8: ${rgba.length} bytes, expected ${width}×${height}×4`);
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = rgba[i * 4]!;
    rgb[i * 3 + 1] = rgba[i * 4 + 1]!;
    rgb[i * 3 + 2] = rgba[i * 4 + 2]!;
  }
  return { width, height, rgb };
}
