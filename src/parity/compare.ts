/**
 * How parity is measured (the fixtures README's rule): for a tensor, max|a − b| / max|b|; for a scalar,
 * |a − b| / |b|; where the reference is zero (max|b| below 1e-30) the error is absolute.
 */

export function relError(got: ArrayLike<number> | number, want: ArrayLike<number> | number): number {
  if (typeof want === 'number' || typeof got === 'number') {
    const g = Number(typeof got === 'number' ? got : got[0]);
    const w = Number(typeof want === 'number' ? want : want[0]);
    if (!Number.isFinite(g)) return Number.POSITIVE_INFINITY;
    const d = Math.abs(g - w);
    return Math.abs(w) < 1e-30 ? d : d / Math.abs(w);
  }
  if (got.length !== want.length) return Number.POSITIVE_INFINITY;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    if (!Number.isFinite(g)) return Number.POSITIVE_INFINITY;
    diff = Math.max(diff, Math.abs(g - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return scale < 1e-30 ? diff : diff / scale;
}
