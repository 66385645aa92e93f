/**
 * Adam, fused and multi-tensor: one dispatch updates up to K parameters (PyTorch's `foreach`/fused Adam),
 * reading p, g, m, v once and writing p, m, v once per element (28 bytes), instead of one dispatch per
 * parameter (an RD++ student has ~160 parameter tensors, most of them tiny BN vectors, where a dispatch
 * costs far more than its arithmetic).
 *
 * Layout: the workgroups of a dispatch are split between the group's parameters in order: parameter j
 * owns workgroups [u.w<j>, u.w<j+1>) and each of its invocations updates one element. WGSL cannot index
 * an array of bindings, so the body is generated once per parameter (`p3`, `g3`, … and `u.n3`, …); the
 * group size K is bounded by the adapter's storage-buffer limit (four bindings per parameter).
 *
 * PyTorch's single-tensor Adam (torch 1.13, no weight decay, no amsgrad), in the same operation order:
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g·g
 *   p ← p − step_size · m / (√v / √(1 − β2^t) + eps),   step_size = lr / (1 − β1^t)
 * The per-step scalars (step_size, √(1 − β2^t)), per parameter since each has its own step count, are
 * computed in float64 on the CPU like PyTorch's Python floats and arrive in a small storage buffer `s`
 * (two per parameter of the optimizer, at 2·x<j>), not as uniforms: a training step replayed from a
 * captured graph (engine/graph.ts) keeps its uniforms as captured, while `s` is one of its inputs.
 */

export const ADAM_WG = 256;

/** Uniform names of parameter j: element count, first workgroup, its index in the optimizer (into `s`). */
export function adamUniformNames(j: number): { n: string; w: string; index: string } {
  return { n: `n${j}`, w: `w${j}`, index: `x${j}` };
}

/**
 * Bindings: inputs s (the step scalars), g0..g{K-1}; outputs p0, m0, v0, p1, …; uniforms b1, c1, b2, c2,
 * eps, total, then per parameter.
 */
export function adamWgsl(k: number): (header: string) => string {
  return (header) => {
    const bodies: string[] = [];
    for (let j = 0; j < k; j++) {
      const u = adamUniformNames(j);
      const end = j + 1 < k ? `u.${adamUniformNames(j + 1).w}` : 'total';
      bodies.push(`  if (w < ${end}) {
    let i = (w - u.${u.w}) * ${ADAM_WG}u + lid;
    if (i >= u.${u.n}) { return; }
    let gi = g${j}[i];
    let mi = u.b1 * m${j}[i] + u.c1 * gi;
    let vi = u.b2 * v${j}[i] + u.c2 * gi * gi;
    let stepSize = s[2u * u.${u.index}];
    let bc2 = s[2u * u.${u.index} + 1u];
    m${j}[i] = mi;
    v${j}[i] = vi;
    p${j}[i] = p${j}[i] - stepSize * (mi / (sqrt(vi) / bc2 + u.eps));
    return;
  }`);
    }
    return `${header}
@compute @workgroup_size(${ADAM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  let total = u.total;
${bodies.join('\n')}
}`;
  };
}
