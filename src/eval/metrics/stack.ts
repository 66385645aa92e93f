/**
 * Image stacks for the AUPRO metrics: per-image arrays or one flat n·h·w array, 0/1 masks checked and
 * labelled into 8-connected components once.
 */
import { connectedComponents8 } from './components.js';

/** A stack of h×w images: an array of per-image arrays, or one flat array of n·h·w values. */
export type ImageStack = readonly ArrayLike<number>[] | ArrayLike<number>;

/** Split a stack into per-image views (no copies for typed arrays). */
export function stackImages(
  x: ImageStack,
  h: number,
  w: number,
  what: string,
  name: string,
): ArrayLike<number>[] {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1)
    throw new Error(`${what}: bad image size ${h}×${w}`);
  const hw = h * w;
  let list: ArrayLike<number>[];
  if (Array.isArray(x) && x.length > 0 && typeof x[0] !== 'number') list = x as ArrayLike<number>[];
  else {
    const flat = x as ArrayLike<number>;
    if (flat.length === 0 || flat.length % hw !== 0)
      throw new Error(`${what}: ${name} has ${flat.length} values, not a positive multiple of ${h}×${w}`);
    list = [];
    for (let o = 0; o < flat.length; o += hw) {
      if (ArrayBuffer.isView(flat)) list.push((flat as unknown as Float32Array).subarray(o, o + hw));
      else list.push(Array.prototype.slice.call(flat, o, o + hw) as number[]);
    }
  }
  list.forEach((im, i) => {
    if (im.length !== hw)
      throw new Error(`${what}: ${name}[${i}] has ${im.length} values, expected ${h}×${w} = ${hw}`);
  });
  return list;
}

/** A mask's 8-connected components (see connectedComponents8). */
export interface MaskInfo {
  labels: Int32Array;
  count: number;
  sizes: Int32Array;
}

/** Check that every mask holds only 0/1 (throws naming the mask and pixel) and label its components. */
export function analyseMasks(masks: ArrayLike<number>[], h: number, w: number, what: string): MaskInfo[] {
  return masks.map((m, i) => {
    for (let p = 0; p < m.length; p++) {
      const v = m[p]!;
      if (v !== 0 && v !== 1)
        throw new Error(
          `${what}: masks must hold 0 or 1; mask ${i} has ${v} at pixel ${p} (binarise first, e.g. > 0.5)`,
        );
    }
    return connectedComponents8(m, h, w);
  });
}

/** Split masks and maps into images, check that they pair up, and analyse the masks. */
export function pairUp(
  masks: ImageStack,
  maps: ImageStack,
  h: number,
  w: number,
  what: string,
): { masks: ArrayLike<number>[]; maps: ArrayLike<number>[]; info: MaskInfo[] } {
  const mk = stackImages(masks, h, w, what, 'masks');
  const mp = stackImages(maps, h, w, what, 'maps');
  if (mk.length !== mp.length) throw new Error(`${what}: ${mk.length} masks but ${mp.length} maps`);
  return { masks: mk, maps: mp, info: analyseMasks(mk, h, w, what) };
}
