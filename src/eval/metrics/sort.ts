/**
 * Sorting scores for the metrics, fast enough for ~10^7 pixels (a whole MVTec category's test set).
 *
 * Every metric here needs the scores in order with something attached (a label, a component id). A
 * comparison sort of objects or of an index array with a comparator takes many seconds at 10^7 elements,
 * and even the native `Float64Array.prototype.sort` takes ~1.1 s here. Instead each score becomes an
 * unsigned integer key whose unsigned order is the numeric order of the score (IEEE-754 trick: flip all
 * bits of negatives, set the sign bit of positives; −0 is first made +0 so that equal numbers get equal
 * keys), and an LSD radix sort with 16-bit digits orders the keys together with a payload array.
 *
 * - Scores that are all exactly representable as float32 (a `Float32Array`, or numbers that survive
 *   `Math.fround`) get one 32-bit key word: 2 passes.
 * - Other scores (genuine float64) get two words (most significant first): 4 passes. Exact either way.
 *
 * Passes whose digit is the same for every element are skipped. NaN and ±Infinity are rejected (sklearn's
 * `assert_all_finite` does the same).
 */

/** Key words of a list of scores, most significant first (one word: float32 scores; two: float64). */
export type KeyWords = [Uint32Array] | [Uint32Array, Uint32Array];

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function badValue(what: string, part: number, i: number, v: number, parts: number): Error {
  const where = parts > 1 ? `image ${part}, index ${i}` : `index ${i}`;
  return new Error(`${what}: scores must be finite numbers; found ${v} at ${where}`);
}

/**
 * Sortable keys of the concatenation of `parts`. Throws (naming `what`) on NaN or ±Infinity.
 */
export function scoreKeys(parts: readonly ArrayLike<number>[], what: string): KeyWords {
  let n = 0;
  let narrow = true;
  for (const p of parts) {
    n += p.length;
    if (narrow && !(p instanceof Float32Array)) {
      for (let i = 0; i < p.length; i++) {
        const v = p[i]!;
        if (Math.fround(v) !== v && !Number.isNaN(v)) {
          narrow = false;
          break;
        }
      }
    }
  }
  if (narrow) {
    const k = new Uint32Array(n);
    const f = new Float32Array(k.buffer); // written as float, read back as bits, in place
    let o = 0;
    for (let pi = 0; pi < parts.length; pi++) {
      const p = parts[pi]!;
      for (let i = 0; i < p.length; i++) {
        const v = p[i]!;
        if (v - v !== 0) throw badValue(what, pi, i, v, parts.length); // NaN or ±Infinity
        f[o + i] = v + 0; // −0 + 0 = +0
      }
      o += p.length;
    }
    for (let i = 0; i < n; i++) {
      const b = k[i]!;
      k[i] = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    }
    return [k];
  }
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  const f = new Float64Array(1);
  const u = new Uint32Array(f.buffer);
  const [iLo, iHi] = LITTLE_ENDIAN ? [0, 1] : [1, 0];
  let o = 0;
  for (let pi = 0; pi < parts.length; pi++) {
    const p = parts[pi]!;
    for (let i = 0; i < p.length; i++) {
      const v = p[i]!;
      if (v - v !== 0) throw badValue(what, pi, i, v, parts.length);
      f[0] = v + 0;
      const h = u[iHi]!;
      const l = u[iLo]!;
      if (h & 0x80000000) {
        hi[o + i] = ~h >>> 0;
        lo[o + i] = ~l >>> 0;
      } else {
        hi[o + i] = (h | 0x80000000) >>> 0;
        lo[o + i] = l;
      }
    }
    o += p.length;
  }
  return [hi, lo];
}

/** The score a key stands for (the inverse of `scoreKeys`' mapping), at index i. */
export function keyValue(words: KeyWords, i: number): number {
  if (words.length === 1) {
    const k = words[0][i]!;
    const b = k & 0x80000000 ? (k & 0x7fffffff) >>> 0 : ~k >>> 0;
    const u = new Uint32Array([b]);
    return new Float32Array(u.buffer)[0]!;
  }
  let h = words[0][i]!;
  let l = words[1][i]!;
  if (h & 0x80000000) h = (h & 0x7fffffff) >>> 0;
  else {
    h = ~h >>> 0;
    l = ~l >>> 0;
  }
  const u = new Uint32Array(2);
  u[LITTLE_ENDIAN ? 1 : 0] = h;
  u[LITTLE_ENDIAN ? 0 : 1] = l;
  return new Float64Array(u.buffer)[0]!;
}

type Payload = Uint8Array | Int32Array | Uint32Array;

// 16-bit digits (2 passes per key word): measured here on 10^7 keys a little faster than 11-bit or 8-bit
const BITS = 16;
const RADIX = 1 << BITS;
const MASK = RADIX - 1;
const DIGITS = 2;

/**
 * Sort the keys ascending (stable), moving `payload` along. Returns the sorted arrays, which may be the
 * inputs (sorted in place) or fresh arrays; the inputs are clobbered either way.
 */
export function radixSort<P extends Payload | null>(
  words: KeyWords,
  payload: P,
): { words: KeyWords; payload: P } {
  const n = words[0].length;
  const nw = words.length;
  // all histograms in one read pass: hist[(w * DIGITS + d) * RADIX + digit]
  const hist = new Uint32Array(nw * DIGITS * RADIX);
  for (let w = 0; w < nw; w++) {
    const src = words[w]!;
    const b0 = w * DIGITS * RADIX;
    const b1 = b0 + RADIX;
    for (let i = 0; i < n; i++) {
      const k = src[i]!;
      hist[b0 + (k & MASK)]!++;
      hist[b1 + (k >>> BITS)]!++;
    }
  }
  let cur: Uint32Array[] = [...words];
  let tmp: Uint32Array[] | null = null;
  let pay: Payload | null = payload;
  let payTmp: Payload | null = null;
  const offs = new Uint32Array(RADIX);
  for (let w = nw - 1; w >= 0; w--) {
    for (let d = 0; d < DIGITS; d++) {
      const base = (w * DIGITS + d) * RADIX;
      let skip = false;
      let sum = 0;
      for (let b = 0; b < RADIX; b++) {
        const c = hist[base + b]!;
        if (c === n) skip = true;
        offs[b] = sum;
        sum += c;
      }
      if (skip) continue;
      if (!tmp) tmp = cur.map(() => new Uint32Array(n));
      if (pay && !payTmp) payTmp = new (pay.constructor as new (n: number) => Payload)(n);
      const sh = d * BITS;
      const key = cur[w]!;
      if (nw === 1) {
        const d0 = tmp[0]!;
        if (pay) {
          const pd = payTmp!;
          for (let i = 0; i < n; i++) {
            const k = key[i]!;
            const at = offs[(k >>> sh) & MASK]!++;
            d0[at] = k;
            pd[at] = pay[i]!;
          }
        } else {
          for (let i = 0; i < n; i++) {
            const k = key[i]!;
            d0[offs[(k >>> sh) & MASK]!++] = k;
          }
        }
      } else {
        const s0 = cur[0]!;
        const s1 = cur[1]!;
        const d0 = tmp[0]!;
        const d1 = tmp[1]!;
        for (let i = 0; i < n; i++) {
          const at = offs[(key[i]! >>> sh) & MASK]!++;
          d0[at] = s0[i]!;
          d1[at] = s1[i]!;
          if (pay) payTmp![at] = pay[i]!;
        }
      }
      [cur, tmp] = [tmp, cur];
      if (pay) [pay, payTmp] = [payTmp!, pay];
    }
  }
  return { words: cur as KeyWords, payload: pay as P };
}
