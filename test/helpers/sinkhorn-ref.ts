/**
 * float64 CPU reference of geomloss's debiased Sinkhorn divergence (spec §4.2: ε schedule, symmetric
 * averaging, extrapolation, envelope-theorem gradients), written from the spec, independent of the
 * kernels; shared by the small-cloud (sinkhorn.test.ts) and large-cloud (sinkhorn-clouds.test.ts) tests.
 * Clouds are row-major [n, D] Float64Arrays.
 */

/** geomloss's ε list: [d²] + exp(numpy.arange(2 ln d, 2 ln blur, 2 ln scaling)) + [blur²]. */
export function refEpsilons(d: number, blur = 0.05, scaling = 0.95): number[] {
  const start = 2 * Math.log(d);
  const stop = 2 * Math.log(blur);
  const step = 2 * Math.log(scaling);
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  const out = [d * d];
  for (let i = 0; i < n; i++)
    out.push(Math.exp(i === 0 ? start : i === 1 ? start + step : start + i * delta));
  out.push(blur * blur);
  return out;
}

/** C[i][j] = ½‖a_i − b_j‖² for row-major clouds a [n, D], b [m, D]. */
export function costs(a: Float64Array, n: number, b: Float64Array, m: number, D: number): Float64Array {
  const C = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < D; k++) s += (a[i * D + k]! - b[j * D + k]!) ** 2;
      C[i * m + j] = s / 2;
    }
  return C;
}

/** softmin(ε, C, h)_i = −ε log Σ_j exp(h_j − C_ij/ε) (max-shifted); optionally the row softmaxes. */
export function softmin(
  eps: number,
  C: Float64Array,
  n: number,
  m: number,
  h: Float64Array,
  plan?: Float64Array,
) {
  const f = new Float64Array(n);
  const z = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < m; j++) {
      z[j] = h[j]! - C[i * m + j]! / eps;
      mx = Math.max(mx, z[j]!);
    }
    let s = 0;
    for (let j = 0; j < m; j++) s += Math.exp(z[j]! - mx);
    f[i] = -eps * (mx + Math.log(s));
    if (plan) for (let j = 0; j < m; j++) plan[i * m + j] = Math.exp(z[j]! - mx) / s;
  }
  return f;
}

export interface Ref {
  value: number;
  dx: Float64Array;
  dy: Float64Array;
}

export function sinkhornRef(
  x: Float64Array,
  N: number,
  y: Float64Array,
  M: number,
  D: number,
  diameter: number,
  blur = 0.05,
): Ref {
  const [Cxy, Cyx, Cxx, Cyy] = [
    costs(x, N, y, M, D),
    costs(y, M, x, N, D),
    costs(x, N, x, N, D),
    costs(y, M, y, M, D),
  ];
  const al = new Float64Array(N).fill(Math.log(1 / N));
  const bl = new Float64Array(M).fill(Math.log(1 / M));
  const E = refEpsilons(diameter, blur);
  const h = (l: Float64Array, f: Float64Array, e: number) => l.map((v, i) => v + f[i]! / e);
  const avg = (a: Float64Array, b: Float64Array) => a.map((v, i) => 0.5 * (v + b[i]!));
  let e = E[0]!;
  let gab = softmin(e, Cyx, M, N, al);
  let fba = softmin(e, Cxy, N, M, bl);
  let faa = softmin(e, Cxx, N, N, al);
  let gbb = softmin(e, Cyy, M, M, bl);
  for (e of E) {
    const fbaT = softmin(e, Cxy, N, M, h(bl, gab, e));
    const gabT = softmin(e, Cyx, M, N, h(al, fba, e));
    const faaT = softmin(e, Cxx, N, N, h(al, faa, e));
    const gbbT = softmin(e, Cyy, M, M, h(bl, gbb, e));
    [fba, gab, faa, gbb] = [avg(fba, fbaT), avg(gab, gabT), avg(faa, faaT), avg(gbb, gbbT)];
  }
  const [Pxy, Pyx, Pxx, Pyy] = [
    new Float64Array(N * M),
    new Float64Array(M * N),
    new Float64Array(N * N),
    new Float64Array(M * M),
  ];
  const Fba = softmin(e, Cxy, N, M, h(bl, gab, e), Pxy);
  const Gab = softmin(e, Cyx, M, N, h(al, fba, e), Pyx);
  const Faa = softmin(e, Cxx, N, N, h(al, faa, e), Pxx);
  const Gbb = softmin(e, Cyy, M, M, h(bl, gbb, e), Pyy);
  let value = 0;
  for (let i = 0; i < N; i++) value += (Fba[i]! - Faa[i]!) / N;
  for (let j = 0; j < M; j++) value += (Gab[j]! - Gbb[j]!) / M;
  // ∂S/∂a_i = w [Σ_j π^cross_ij (a_i − b_j) − Σ_k π^self_ik (a_i − a_k)]
  const grad = (
    a: Float64Array,
    n: number,
    b: Float64Array,
    m: number,
    Pc: Float64Array,
    Ps: Float64Array,
  ) => {
    const g = new Float64Array(n * D);
    for (let i = 0; i < n; i++)
      for (let k = 0; k < D; k++) {
        let s = 0;
        for (let j = 0; j < m; j++) s += Pc[i * m + j]! * (a[i * D + k]! - b[j * D + k]!);
        for (let l = 0; l < n; l++) s -= Ps[i * n + l]! * (a[i * D + k]! - a[l * D + k]!);
        g[i * D + k] = s / n;
      }
    return g;
  };
  return { value, dx: grad(x, N, y, M, Pxy, Pxx), dy: grad(y, M, x, N, Pyx, Pyy) };
}

/** geomloss max_diameter(x.view(-1, D), y.view(-1, D)) in float64. */
export function refDiameter(x: Float32Array, y: Float32Array, D: number): number {
  let s = 0;
  for (let k = 0; k < D; k++) {
    let mn = Infinity;
    let mx = -Infinity;
    for (const a of [x, y])
      for (let i = k; i < a.length; i += D) {
        mn = Math.min(mn, a[i]!);
        mx = Math.max(mx, a[i]!);
      }
    s += (mx - mn) ** 2;
  }
  return Math.sqrt(s);
}

/** max |a − b| / max |b| (absolute when b is all zero). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return s > 0 ? d / s : d;
}
