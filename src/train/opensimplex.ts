/**
 * OpenSimplex 3-D noise (Kurt Spencer's public-domain 2014 algorithm) in the exact form of the Python
 * `opensimplex` package ≤ 0.3, which the RD++ reference copies into `dataset/noise.py` (spec §5).
 *
 * Algorithm. The input point is skewed onto the "simplectic honeycomb" by adding (x+y+z)·STRETCH
 * (STRETCH = −1/6) to each coordinate; flooring gives the rhombohedral super-cell (xsb, ysb, zsb) and the
 * fractional parts (xins, yins, zins). Their sum picks the region of the cell: ≤ 1 the tetrahedron at
 * (0,0,0), ≥ 2 the tetrahedron at (1,1,1), otherwise the octahedron in between. The region's 4 (or 6)
 * vertices contribute, plus two extra lattice vertices outside the region chosen from which region
 * vertices are nearest (so that every vertex whose kernel reaches the point is counted). A vertex at
 * unskewed offset d contributes (2 − |d|²)⁴ · (g · d) when 2 − |d|² > 0, where g is one of 24 integer
 * gradient vectors picked by hashing the vertex through a seeded 256-entry permutation; offsets of a
 * vertex (a, b, c) from the cell origin are d0 − (a, b, c) − (a+b+c)·SQUISH (SQUISH = 1/3). The sum
 * is divided by 103.
 *
 * Exactness. Every floating-point expression below is written in the same order as the reference
 * (including the places where it adds ±1 or ±2 to an offset *after* subtracting the squish term, which
 * rounds differently from the "clean" formula), and the contributions are summed in the reference
 * order, so in float64 the result should be bit-identical to the Python package for the same
 * permutation. The seeding (a 64-bit LCG driving a Fisher–Yates-like draw) uses BigInt.
 *
 * Platform-neutral: no Node or browser APIs.
 */

const STRETCH = -1 / 6;
const SQUISH = 1 / 3;
const NORM = 103;

/** The 24 gradient vectors (x, y, z), flattened; gradient g starts at index 3g (spec §5 order). */
// biome-ignore format: one row of four gradient vectors (x, y, z) per line
const GRAD3 = new Int8Array([
  -11,  4,  4,   -4, 11,  4,   -4,  4, 11,   11,  4,  4,
    4, 11,  4,    4,  4, 11,  -11, -4,  4,   -4,-11,  4,
   -4, -4, 11,   11, -4,  4,    4,-11,  4,    4, -4, 11,
  -11,  4, -4,   -4, 11, -4,   -4,  4,-11,   11,  4, -4,
    4, 11, -4,    4,  4,-11,  -11, -4, -4,   -4,-11, -4,
   -4, -4,-11,   11, -4, -4,    4,-11, -4,    4, -4,-11,
]);

const LCG_A = 6364136223846793005n;
const LCG_C = 1442695040888963407n;

/**
 * A seed as a signed 64-bit integer. Numbers must be integers (any magnitude; wrapped to 64 bits like
 * the reference's C `long` arithmetic); bigints are wrapped the same way.
 */
export function toSeed64(seed: bigint | number): bigint {
  if (typeof seed === 'number') {
    if (!Number.isInteger(seed)) {
      throw new Error(`OpenSimplex3: seed must be an integer, got ${seed}`);
    }
    return BigInt.asIntN(64, BigInt(seed));
  }
  return BigInt.asIntN(64, seed);
}

/** Seeded 3-D OpenSimplex noise generator. */
export class OpenSimplex3 {
  /** perm[i] ∈ 0..255, a permutation of 0..255. */
  readonly perm: Int16Array;
  /** permGrad3[i] = (perm[i] mod 24) · 3: flat offset of the gradient vector in the 72-int table. */
  readonly permGrad3: Int16Array;
  /** the seed as a signed 64-bit integer */
  readonly seed: bigint;

  constructor(seed: bigint | number) {
    this.seed = toSeed64(seed);
    this.perm = new Int16Array(256);
    this.permGrad3 = new Int16Array(256);
    const source = new Int16Array(256);
    for (let i = 0; i < 256; i++) source[i] = i;
    let s = this.seed;
    for (let k = 0; k < 3; k++) s = BigInt.asIntN(64, s * LCG_A + LCG_C);
    for (let i = 255; i >= 0; i--) {
      s = BigInt.asIntN(64, s * LCG_A + LCG_C);
      // (s + 31) is the exact (unwrapped) integer; the remainder is taken non-negative (Python `%`).
      const m = BigInt(i + 1);
      let r = (s + 31n) % m;
      if (r < 0n) r += m;
      const ri = Number(r);
      const p = source[ri]!;
      this.perm[i] = p;
      this.permGrad3[i] = (p % 24) * 3;
      source[ri] = source[i]!;
    }
  }

  /** Contribution of lattice vertex (xsv, ysv, zsv) at offset (dx, dy, dz) from the point. */
  private vertex(xsv: number, ysv: number, zsv: number, dx: number, dy: number, dz: number): number {
    let attn = 2 - dx * dx - dy * dy - dz * dz;
    if (!(attn > 0)) return 0;
    const perm = this.perm;
    const g = this.permGrad3[(perm[(perm[xsv & 255]! + ysv) & 255]! + zsv) & 255]!;
    attn *= attn;
    return attn * attn * (GRAD3[g]! * dx + GRAD3[g + 1]! * dy + GRAD3[g + 2]! * dz);
  }

  /** Noise value at (x, y, z), roughly in [−1, 1]. */
  noise3(x: number, y: number, z: number): number {
    const stretch = (x + y + z) * STRETCH;
    const xs = x + stretch;
    const ys = y + stretch;
    const zs = z + stretch;
    const xsb = Math.floor(xs);
    const ysb = Math.floor(ys);
    const zsb = Math.floor(zs);
    const squish = (xsb + ysb + zsb) * SQUISH;
    const xins = xs - xsb;
    const yins = ys - ysb;
    const zins = zs - zsb;
    const inSum = xins + yins + zins;
    // offsets from the cell origin (0,0,0)
    const dx0 = x - (xsb + squish);
    const dy0 = y - (ysb + squish);
    const dz0 = z - (zsb + squish);

    // the two extra vertices (lattice coordinates and offsets)
    let xe0 = 0;
    let ye0 = 0;
    let ze0 = 0;
    let xe1 = 0;
    let ye1 = 0;
    let ze1 = 0;
    let dxe0 = 0;
    let dye0 = 0;
    let dze0 = 0;
    let dxe1 = 0;
    let dye1 = 0;
    let dze1 = 0;
    let value = 0;

    if (inSum <= 1) {
      // Tetrahedron at (0,0,0). Closest two of (1,0,0)=1, (0,1,0)=2, (0,0,1)=4.
      let aPoint = 1;
      let aScore = xins;
      let bPoint = 2;
      let bScore = yins;
      if (aScore >= bScore && zins > bScore) {
        bScore = zins;
        bPoint = 4;
      } else if (aScore < bScore && zins > aScore) {
        aScore = zins;
        aPoint = 4;
      }
      const wins = 1 - inSum;
      if (wins > aScore || wins > bScore) {
        // (0,0,0) is one of the closest two; the other is the closer of a and b.
        const c = bScore > aScore ? bPoint : aPoint;
        if ((c & 1) === 0) {
          xe0 = xsb - 1;
          xe1 = xsb;
          dxe0 = dx0 + 1;
          dxe1 = dx0;
        } else {
          xe0 = xe1 = xsb + 1;
          dxe0 = dxe1 = dx0 - 1;
        }
        if ((c & 2) === 0) {
          ye0 = ye1 = ysb;
          dye0 = dye1 = dy0;
          if ((c & 1) === 0) {
            ye1 -= 1;
            dye1 += 1;
          } else {
            ye0 -= 1;
            dye0 += 1;
          }
        } else {
          ye0 = ye1 = ysb + 1;
          dye0 = dye1 = dy0 - 1;
        }
        if ((c & 4) === 0) {
          ze0 = zsb;
          ze1 = zsb - 1;
          dze0 = dz0;
          dze1 = dz0 + 1;
        } else {
          ze0 = ze1 = zsb + 1;
          dze0 = dze1 = dz0 - 1;
        }
      } else {
        // (0,0,0) is not among the closest two: the extra vertices follow from a | b.
        const c = aPoint | bPoint;
        if ((c & 1) === 0) {
          xe0 = xsb;
          xe1 = xsb - 1;
          dxe0 = dx0 - 2 * SQUISH;
          dxe1 = dx0 + 1 - SQUISH;
        } else {
          xe0 = xe1 = xsb + 1;
          dxe0 = dx0 - 1 - 2 * SQUISH;
          dxe1 = dx0 - 1 - SQUISH;
        }
        if ((c & 2) === 0) {
          ye0 = ysb;
          ye1 = ysb - 1;
          dye0 = dy0 - 2 * SQUISH;
          dye1 = dy0 + 1 - SQUISH;
        } else {
          ye0 = ye1 = ysb + 1;
          dye0 = dy0 - 1 - 2 * SQUISH;
          dye1 = dy0 - 1 - SQUISH;
        }
        if ((c & 4) === 0) {
          ze0 = zsb;
          ze1 = zsb - 1;
          dze0 = dz0 - 2 * SQUISH;
          dze1 = dz0 + 1 - SQUISH;
        } else {
          ze0 = ze1 = zsb + 1;
          dze0 = dz0 - 1 - 2 * SQUISH;
          dze1 = dz0 - 1 - SQUISH;
        }
      }
      value += this.vertex(xsb, ysb, zsb, dx0, dy0, dz0);
      const dx1 = dx0 - 1 - SQUISH;
      const dy1 = dy0 - 0 - SQUISH;
      const dz1 = dz0 - 0 - SQUISH;
      value += this.vertex(xsb + 1, ysb, zsb, dx1, dy1, dz1);
      const dx2 = dx0 - 0 - SQUISH;
      const dy2 = dy0 - 1 - SQUISH;
      value += this.vertex(xsb, ysb + 1, zsb, dx2, dy2, dz1);
      const dz3 = dz0 - 1 - SQUISH;
      value += this.vertex(xsb, ysb, zsb + 1, dx2, dy1, dz3);
    } else if (inSum >= 2) {
      // Tetrahedron at (1,1,1). Closest two of (1,1,0)=3, (1,0,1)=5, (0,1,1)=6.
      let aPoint = 6;
      let aScore = xins;
      let bPoint = 5;
      let bScore = yins;
      if (aScore <= bScore && zins < bScore) {
        bScore = zins;
        bPoint = 3;
      } else if (aScore > bScore && zins < aScore) {
        aScore = zins;
        aPoint = 3;
      }
      const wins = 3 - inSum;
      if (wins < aScore || wins < bScore) {
        // (1,1,1) is one of the closest two; the other is the closer of a and b.
        const c = bScore < aScore ? bPoint : aPoint;
        if ((c & 1) !== 0) {
          xe0 = xsb + 2;
          xe1 = xsb + 1;
          dxe0 = dx0 - 2 - 3 * SQUISH;
          dxe1 = dx0 - 1 - 3 * SQUISH;
        } else {
          xe0 = xe1 = xsb;
          dxe0 = dxe1 = dx0 - 3 * SQUISH;
        }
        if ((c & 2) !== 0) {
          ye0 = ye1 = ysb + 1;
          dye0 = dye1 = dy0 - 1 - 3 * SQUISH;
          if ((c & 1) !== 0) {
            ye1 += 1;
            dye1 -= 1;
          } else {
            ye0 += 1;
            dye0 -= 1;
          }
        } else {
          ye0 = ye1 = ysb;
          dye0 = dye1 = dy0 - 3 * SQUISH;
        }
        if ((c & 4) !== 0) {
          ze0 = zsb + 1;
          ze1 = zsb + 2;
          dze0 = dz0 - 1 - 3 * SQUISH;
          dze1 = dz0 - 2 - 3 * SQUISH;
        } else {
          ze0 = ze1 = zsb;
          dze0 = dze1 = dz0 - 3 * SQUISH;
        }
      } else {
        // (1,1,1) is not among the closest two: the extra vertices follow from a & b.
        const c = aPoint & bPoint;
        if ((c & 1) !== 0) {
          xe0 = xsb + 1;
          xe1 = xsb + 2;
          dxe0 = dx0 - 1 - SQUISH;
          dxe1 = dx0 - 2 - 2 * SQUISH;
        } else {
          xe0 = xe1 = xsb;
          dxe0 = dx0 - SQUISH;
          dxe1 = dx0 - 2 * SQUISH;
        }
        if ((c & 2) !== 0) {
          ye0 = ysb + 1;
          ye1 = ysb + 2;
          dye0 = dy0 - 1 - SQUISH;
          dye1 = dy0 - 2 - 2 * SQUISH;
        } else {
          ye0 = ye1 = ysb;
          dye0 = dy0 - SQUISH;
          dye1 = dy0 - 2 * SQUISH;
        }
        if ((c & 4) !== 0) {
          ze0 = zsb + 1;
          ze1 = zsb + 2;
          dze0 = dz0 - 1 - SQUISH;
          dze1 = dz0 - 2 - 2 * SQUISH;
        } else {
          ze0 = ze1 = zsb;
          dze0 = dz0 - SQUISH;
          dze1 = dz0 - 2 * SQUISH;
        }
      }
      const dx3 = dx0 - 1 - 2 * SQUISH;
      const dy3 = dy0 - 1 - 2 * SQUISH;
      const dz3 = dz0 - 0 - 2 * SQUISH;
      value += this.vertex(xsb + 1, ysb + 1, zsb, dx3, dy3, dz3);
      const dy2 = dy0 - 0 - 2 * SQUISH;
      const dz2 = dz0 - 1 - 2 * SQUISH;
      value += this.vertex(xsb + 1, ysb, zsb + 1, dx3, dy2, dz2);
      const dx1 = dx0 - 0 - 2 * SQUISH;
      value += this.vertex(xsb, ysb + 1, zsb + 1, dx1, dy3, dz2);
      value += this.vertex(
        xsb + 1,
        ysb + 1,
        zsb + 1,
        dx0 - 1 - 3 * SQUISH,
        dy0 - 1 - 3 * SQUISH,
        dz0 - 1 - 3 * SQUISH,
      );
    } else {
      // Octahedron between the two tetrahedra. Decide (0,0,1)=4 vs (1,1,0)=3 ...
      let aScore: number;
      let aPoint: number;
      let aFar: boolean;
      const p1 = xins + yins;
      if (p1 > 1) {
        aScore = p1 - 1;
        aPoint = 3;
        aFar = true;
      } else {
        aScore = 1 - p1;
        aPoint = 4;
        aFar = false;
      }
      // ... (0,1,0)=2 vs (1,0,1)=5 ...
      let bScore: number;
      let bPoint: number;
      let bFar: boolean;
      const p2 = xins + zins;
      if (p2 > 1) {
        bScore = p2 - 1;
        bPoint = 5;
        bFar = true;
      } else {
        bScore = 1 - p2;
        bPoint = 2;
        bFar = false;
      }
      // ... and the closer of (1,0,0)=1 / (0,1,1)=6 replaces the farther of a, b if it is closer.
      const p3 = yins + zins;
      if (p3 > 1) {
        const score = p3 - 1;
        if (aScore <= bScore && aScore < score) {
          aPoint = 6;
          aFar = true;
        } else if (aScore > bScore && bScore < score) {
          bPoint = 6;
          bFar = true;
        }
      } else {
        const score = 1 - p3;
        if (aScore <= bScore && aScore < score) {
          aPoint = 1;
          aFar = false;
        } else if (aScore > bScore && bScore < score) {
          bPoint = 1;
          bFar = false;
        }
      }

      if (aFar === bFar) {
        if (aFar) {
          // Both closest on the (1,1,1) side: extras are (1,1,1) and one along the shared axis.
          dxe0 = dx0 - 1 - 3 * SQUISH;
          dye0 = dy0 - 1 - 3 * SQUISH;
          dze0 = dz0 - 1 - 3 * SQUISH;
          xe0 = xsb + 1;
          ye0 = ysb + 1;
          ze0 = zsb + 1;
          const c = aPoint & bPoint;
          if ((c & 1) !== 0) {
            dxe1 = dx0 - 2 - 2 * SQUISH;
            dye1 = dy0 - 2 * SQUISH;
            dze1 = dz0 - 2 * SQUISH;
            xe1 = xsb + 2;
            ye1 = ysb;
            ze1 = zsb;
          } else if ((c & 2) !== 0) {
            dxe1 = dx0 - 2 * SQUISH;
            dye1 = dy0 - 2 - 2 * SQUISH;
            dze1 = dz0 - 2 * SQUISH;
            xe1 = xsb;
            ye1 = ysb + 2;
            ze1 = zsb;
          } else {
            dxe1 = dx0 - 2 * SQUISH;
            dye1 = dy0 - 2 * SQUISH;
            dze1 = dz0 - 2 - 2 * SQUISH;
            xe1 = xsb;
            ye1 = ysb;
            ze1 = zsb + 2;
          }
        } else {
          // Both closest on the (0,0,0) side: extras are (0,0,0) and one off the omitted axis.
          dxe0 = dx0;
          dye0 = dy0;
          dze0 = dz0;
          xe0 = xsb;
          ye0 = ysb;
          ze0 = zsb;
          const c = aPoint | bPoint;
          if ((c & 1) === 0) {
            dxe1 = dx0 + 1 - SQUISH;
            dye1 = dy0 - 1 - SQUISH;
            dze1 = dz0 - 1 - SQUISH;
            xe1 = xsb - 1;
            ye1 = ysb + 1;
            ze1 = zsb + 1;
          } else if ((c & 2) === 0) {
            dxe1 = dx0 - 1 - SQUISH;
            dye1 = dy0 + 1 - SQUISH;
            dze1 = dz0 - 1 - SQUISH;
            xe1 = xsb + 1;
            ye1 = ysb - 1;
            ze1 = zsb + 1;
          } else {
            dxe1 = dx0 - 1 - SQUISH;
            dye1 = dy0 - 1 - SQUISH;
            dze1 = dz0 + 1 - SQUISH;
            xe1 = xsb + 1;
            ye1 = ysb + 1;
            ze1 = zsb - 1;
          }
        }
      } else {
        // One closest point on each side.
        const c1 = aFar ? aPoint : bPoint;
        const c2 = aFar ? bPoint : aPoint;
        // a permutation of (1,1,−1) ...
        if ((c1 & 1) === 0) {
          dxe0 = dx0 + 1 - SQUISH;
          dye0 = dy0 - 1 - SQUISH;
          dze0 = dz0 - 1 - SQUISH;
          xe0 = xsb - 1;
          ye0 = ysb + 1;
          ze0 = zsb + 1;
        } else if ((c1 & 2) === 0) {
          dxe0 = dx0 - 1 - SQUISH;
          dye0 = dy0 + 1 - SQUISH;
          dze0 = dz0 - 1 - SQUISH;
          xe0 = xsb + 1;
          ye0 = ysb - 1;
          ze0 = zsb + 1;
        } else {
          dxe0 = dx0 - 1 - SQUISH;
          dye0 = dy0 - 1 - SQUISH;
          dze0 = dz0 + 1 - SQUISH;
          xe0 = xsb + 1;
          ye0 = ysb + 1;
          ze0 = zsb - 1;
        }
        // ... and a permutation of (0,0,2) (the ±2 is applied after the squish term, as in the reference)
        dxe1 = dx0 - 2 * SQUISH;
        dye1 = dy0 - 2 * SQUISH;
        dze1 = dz0 - 2 * SQUISH;
        xe1 = xsb;
        ye1 = ysb;
        ze1 = zsb;
        if ((c2 & 1) !== 0) {
          dxe1 -= 2;
          xe1 += 2;
        } else if ((c2 & 2) !== 0) {
          dye1 -= 2;
          ye1 += 2;
        } else {
          dze1 -= 2;
          ze1 += 2;
        }
      }

      const dx1 = dx0 - 1 - SQUISH;
      const dy1 = dy0 - 0 - SQUISH;
      const dz1 = dz0 - 0 - SQUISH;
      value += this.vertex(xsb + 1, ysb, zsb, dx1, dy1, dz1);
      const dx2 = dx0 - 0 - SQUISH;
      const dy2 = dy0 - 1 - SQUISH;
      value += this.vertex(xsb, ysb + 1, zsb, dx2, dy2, dz1);
      const dz3 = dz0 - 1 - SQUISH;
      value += this.vertex(xsb, ysb, zsb + 1, dx2, dy1, dz3);
      const dx4 = dx0 - 1 - 2 * SQUISH;
      const dy4 = dy0 - 1 - 2 * SQUISH;
      const dz4 = dz0 - 0 - 2 * SQUISH;
      value += this.vertex(xsb + 1, ysb + 1, zsb, dx4, dy4, dz4);
      const dy5 = dy0 - 0 - 2 * SQUISH;
      const dz5 = dz0 - 1 - 2 * SQUISH;
      value += this.vertex(xsb + 1, ysb, zsb + 1, dx4, dy5, dz5);
      const dx6 = dx0 - 0 - 2 * SQUISH;
      value += this.vertex(xsb, ysb + 1, zsb + 1, dx6, dy4, dz5);
    }

    value += this.vertex(xe0, ye0, ze0, dxe0, dye0, dze0);
    value += this.vertex(xe1, ye1, ze1, dxe1, dye1, dze1);
    return value / NORM;
  }
}
