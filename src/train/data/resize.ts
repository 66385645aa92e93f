/**
 * CPU resampling with the reference's exact semantics (spec §6). Two different resizers are needed, and
 * swapping them silently changes results (spec §9 pitfall 12):
 *
 * 1. Images: OpenCV `cv2.resize(img, (W, H))` = INTER_LINEAR on the float64 image: separable, half-pixel
 *    centres, NO antialiasing. Per axis with s = in/out (OpenCV: 1/(out/in)), output index u samples
 *    x = (u + 0.5)·s − 0.5, x0 = floor(x), f = x − x0, value (1 − f)·a[x0] + f·a[x0 + 1]. Details that
 *    we mirror from OpenCV's generic resize (resizeGeneric_ with HResizeLinear/VResizeLinear):
 *    - x is rounded to float32 before the floor, and the two weights are float32 (1 − f, f); the pixel
 *      arithmetic is float64. For the usual output of 256 (s = in/256 is dyadic) the float32 rounding
 *      changes nothing, so this equals the spec formula exactly.
 *    - horizontally, x0 < 0 → x0 = 0, f = 0 and x0 ≥ in − 1 → x0 = in − 1, f = 0 (one tap);
 *      vertically the weights are NOT zeroed: rows x0 and x0 + 1 are clamped into [0, in − 1] and both
 *      weights are applied (same value up to one float64 ulp).
 *    - exactly 2× downscaling on both axes is done by OpenCV as INTER_AREA: ((a + b) + c + d)·0.25.
 *    1024 → 256 therefore samples only pixels 4u + 1 and 4u + 2 of each axis (f = 0.5): a 2×2 average out
 *    of every 4×4 block. A canvas/PIL resize (antialiased) would give different inputs.
 * 2. Ground-truth masks: PIL `Image.resize(size, BILINEAR)` (torchvision Resize on a PIL image), which
 *    ANTIALIASES: PIL's ImagingResample, horizontal pass then vertical pass, each with a triangle filter of
 *    half-width support = max(s, 1) source pixels, centre (u + 0.5)·s, taps j from
 *    int(centre − support + 0.5) to int(centre + support + 0.5) (exclusive, clamped to the image), weights
 *    tri((j − centre + 0.5)/max(s, 1)) normalised to sum 1, converted to 22-bit fixed point
 *    (int(0.5 + w·2^22)), and each pass rounds to uint8: (Σ v·k + 2^21) >> 22, clamped to [0, 255]. A pass
 *    is skipped when its size does not change. For PIL modes '1' and 'P' PIL switches to NEAREST:
 *    source index floor((u + 0.5)·s) (x accumulated as PIL does).
 *
 * Pure functions, no Node API, no GPU: this runs once per image at load time.
 */

function checkDims(what: string, w: number, h: number, outW: number, outH: number): void {
  for (const [name, v] of [
    ['width', w],
    ['height', h],
    ['output width', outW],
    ['output height', outH],
  ] as const) {
    if (!Number.isInteger(v) || v <= 0)
      throw new Error(`${what}: ${name} must be a positive integer, got ${v}`);
  }
}

/** Per-axis taps of OpenCV INTER_LINEAR (see header). `clampWeights` = the horizontal-pass edge rule. */
function linearTaps(inSize: number, outSize: number, clampWeights: boolean) {
  const scale = 1 / (outSize / inSize);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w0 = new Float64Array(outSize);
  const w1 = new Float64Array(outSize);
  for (let u = 0; u < outSize; u++) {
    let f = Math.fround((u + 0.5) * scale - 0.5);
    let x0 = Math.floor(f);
    f = Math.fround(f - x0);
    if (clampWeights) {
      if (x0 < 0) {
        x0 = 0;
        f = 0;
      }
      if (x0 >= inSize - 1) {
        x0 = inSize - 1;
        f = 0;
      }
      i0[u] = x0;
      i1[u] = Math.min(x0 + 1, inSize - 1);
    } else {
      i0[u] = Math.min(Math.max(x0, 0), inSize - 1);
      i1[u] = Math.min(Math.max(x0 + 1, 0), inSize - 1);
    }
    w0[u] = Math.fround(1 - f);
    w1[u] = f;
  }
  return { i0, i1, w0, w1 };
}

/**
 * OpenCV INTER_LINEAR resize (half-pixel centres, no antialiasing; spec §6 step 3) of an HWC image with
 * any number of channels (inferred from the length; RGB in practice), computed in float64. A Float64Array
 * input (v/255 in float64, as the reference has it) gives exactly float32(reference); a Float32Array
 * input differs from that by at most one float32 ulp. Returns CHW (channel-major) float32 [c, outH, outW], which is what the model consumes.
 */
export function resizeLinear(
  rgbHwc: Float32Array | Float64Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
): Float32Array {
  checkDims('resizeLinear', w, h, outW, outH);
  const px = w * h;
  if (rgbHwc.length === 0 || rgbHwc.length % px !== 0)
    throw new Error(
      `resizeLinear: input length ${rgbHwc.length} is not a whole number of channels of ${w}×${h} pixels (expected ${px}·channels, HWC)`,
    );
  const c = rgbHwc.length / px;
  const out = new Float32Array(c * outW * outH);
  const plane = outW * outH;

  const sx = 1 / (outW / w);
  const sy = 1 / (outH / h);
  if (Math.abs(sx - 2) < Number.EPSILON && Math.abs(sy - 2) < Number.EPSILON) {
    // OpenCV turns exact 2× INTER_LINEAR into fast INTER_AREA (same values up to float64 rounding)
    for (let v = 0; v < outH; v++) {
      const r0 = 2 * v * w;
      const r1 = r0 + w;
      for (let u = 0; u < outW; u++) {
        for (let k = 0; k < c; k++) {
          const a = rgbHwc[(r0 + 2 * u) * c + k]!;
          const b = rgbHwc[(r0 + 2 * u + 1) * c + k]!;
          const d = rgbHwc[(r1 + 2 * u) * c + k]!;
          const e = rgbHwc[(r1 + 2 * u + 1) * c + k]!;
          out[k * plane + v * outW + u] = (a + b + d + e) * 0.25;
        }
      }
    }
    return out;
  }

  const hx = linearTaps(w, outW, true);
  const vy = linearTaps(h, outH, false);
  // horizontal pass, lazily, only for the rows the vertical pass reads: HWC rows of outW·c float64
  const rowLen = outW * c;
  const tmp = new Float64Array(h * rowLen);
  const done = new Uint8Array(h);
  const hrow = (y: number): number => {
    const base = y * rowLen;
    if (done[y]) return base;
    done[y] = 1;
    const src = y * w * c;
    for (let u = 0; u < outW; u++) {
      const a0 = hx.w0[u]!;
      const a1 = hx.w1[u]!;
      const p0 = src + hx.i0[u]! * c;
      const p1 = src + hx.i1[u]! * c;
      for (let k = 0; k < c; k++) {
        tmp[base + u * c + k] = a1 === 0 ? rgbHwc[p0 + k]! * a0 : rgbHwc[p0 + k]! * a0 + rgbHwc[p1 + k]! * a1;
      }
    }
    return base;
  };
  for (let v = 0; v < outH; v++) {
    const b0 = vy.w0[v]!;
    const b1 = vy.w1[v]!;
    const s0 = hrow(vy.i0[v]!);
    const s1 = hrow(vy.i1[v]!);
    for (let u = 0; u < outW; u++) {
      for (let k = 0; k < c; k++) {
        out[k * plane + v * outW + u] = tmp[s0 + u * c + k]! * b0 + tmp[s1 + u * c + k]! * b1;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// PIL

const PRECISION_BITS = 22; // 32 − 8 − 2, as in PIL's Resample.c

/** PIL's precompute_coeffs for the bilinear (triangle, support 1) filter, as 22-bit fixed point. */
export function pilBilinearCoeffs(
  inSize: number,
  outSize: number,
): { bounds: Int32Array; count: Int32Array; kSize: number; k: Int32Array } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale;
  const kSize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Int32Array(outSize * kSize);
  const ss = 1 / filterscale;
  const w = new Float64Array(kSize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5); // C (int) cast
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      let t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      const v = t < 1 ? 1 - t : 0;
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x]! / ww : w[x]!;
      // normalize_coeffs_8bpc
      k[xx * kSize + x] =
        v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx] = xmin;
    count[xx] = xmax;
  }
  return { bounds, count, kSize, k };
}

function clip8(v: number): number {
  const x = v >> PRECISION_BITS; // arithmetic shift = floor for int32
  return Math.min(Math.max(x, 0), 255);
}

/**
 * PIL `Image.resize((outW, outH), Image.BILINEAR)` on a single-channel 8-bit ('L') image: antialiased,
 * horizontal then vertical pass, each rounding to uint8 (see header). Returns uint8 [outH, outW].
 */
export function pilResizeBilinear8(
  gray: Uint8Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
): Uint8Array {
  checkDims('pilResizeBilinear8', w, h, outW, outH);
  if (gray.length !== w * h)
    throw new Error(`pilResizeBilinear8: input length ${gray.length}, expected ${w}×${h} = ${w * h}`);
  let img = gray;
  let iw = w;
  const half = 1 << (PRECISION_BITS - 1);
  if (outW !== w) {
    const c = pilBilinearCoeffs(w, outW);
    const out = new Uint8Array(outW * h);
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = c.bounds[xx]!;
        const n = c.count[xx]!;
        const kb = xx * c.kSize;
        let ss = half;
        for (let x = 0; x < n; x++) ss += img[row + xmin + x]! * c.k[kb + x]!;
        out[y * outW + xx] = clip8(ss);
      }
    }
    img = out;
    iw = outW;
  }
  if (outH !== h) {
    const c = pilBilinearCoeffs(h, outH);
    const out = new Uint8Array(iw * outH);
    for (let yy = 0; yy < outH; yy++) {
      const ymin = c.bounds[yy]!;
      const n = c.count[yy]!;
      const kb = yy * c.kSize;
      for (let xx = 0; xx < iw; xx++) {
        let ss = half;
        for (let y = 0; y < n; y++) ss += img[(ymin + y) * iw + xx]! * c.k[kb + y]!;
        out[yy * iw + xx] = clip8(ss);
      }
    }
    img = out;
  }
  return img === gray ? gray.slice() : img;
}

/**
 * PIL NEAREST resize (what `Image.resize` uses for modes '1' and 'P' whatever filter is asked for):
 * ImagingScaleAffine with a = in/out: column floor(s/2 + u·s) accumulated, row floor(s·(v + 0.5)).
 */
export function pilResizeNearest8(
  gray: Uint8Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
): Uint8Array {
  checkDims('pilResizeNearest8', w, h, outW, outH);
  if (gray.length !== w * h)
    throw new Error(`pilResizeNearest8: input length ${gray.length}, expected ${w}×${h} = ${w * h}`);
  if (outW === w && outH === h) return gray.slice();
  const ax = w / outW;
  const ay = h / outH;
  const xin = new Int32Array(outW);
  let xo = ax * 0.5;
  for (let x = 0; x < outW; x++) {
    xin[x] = Math.min(Math.max(Math.floor(xo), 0), w - 1);
    xo += ax;
  }
  const out = new Uint8Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const yi = Math.min(Math.max(Math.floor(ay * (y + 0.5)), 0), h - 1);
    for (let x = 0; x < outW; x++) out[y * outW + x] = gray[yi * w + xin[x]!]!;
  }
  return out;
}
