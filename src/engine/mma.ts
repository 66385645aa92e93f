/**
 * When the GEMMs run on subgroup matrices (tensor cores, shaders/mma.ts): only under PRECISION=f16, only as
 * the flag GEMM_MMA allows, only on a device that offers them — and only after they have been checked on
 * that device. `chromium-experimental-subgroup-matrix` is experimental (Dawn gates it behind
 * `allow_unsafe_apis`) and the kernel relies on subgroups being consecutive invocations of one fixed size,
 * so `prepareMma` (engine/mma-check.ts) runs a matmul and a convolution with their gradients on both the
 * MMA tile and the SIMT f16 tile and keeps the MMA tile only when they agree. Until it has, and on every
 * device where it fails, the GEMMs run on the SIMT f16 kernel: correct everywhere, never silently wrong.
 *
 * The tile for a device (mmaTileForDevice) is a pure function of its AdapterReport, so its rules are tested
 * without the hardware: the f16×f16→f32 configuration (16×16×16 preferred, then 16×8×16, 16×8×8, as an
 * H200 offers), 2×2 subgroups of the device's subgroup size, each with a 32×32 block of fragments, 32 deep.
 */
import {
  type MmaConfig,
  type MmaTile,
  mmaBlock,
  mmaKey,
  mmaProblem,
  mmaSharedBytes,
} from '../shaders/mma.js';
import type { AdapterReport } from './device.js';
import { flag } from './flags.js';

export const MMA_FEATURE = 'chromium-experimental-subgroup-matrix';

/** Configurations in order of preference (larger fragments: fewer loads per product). */
const PREFERRED: readonly MmaConfig[] = [
  { m: 16, n: 16, k: 16 },
  { m: 16, n: 8, k: 16 },
  { m: 16, n: 8, k: 8 },
];

/** The layout of a configuration for `lanes`-wide subgroups: 2×2 subgroups (1×1 where 4 would not fit). */
export function mmaLayout(config: MmaConfig, lanes: number, maxThreads = 256): MmaTile {
  const sg = 4 * lanes <= Math.min(256, maxThreads) ? 2 : 1;
  return {
    config,
    lanes,
    sgm: sg,
    sgn: sg,
    fm: Math.max(1, 32 / config.m),
    fn: Math.max(1, 32 / config.n),
    steps: Math.max(1, 32 / config.k),
    emulate: false,
  };
}

/**
 * The tile for GEMM_MMA=emulate: the builtins in plain WGSL, 2×2 subgroups of 32 with one 16×16×16 fragment
 * each (a small block keeps lavapipe's compile times to seconds).
 */
export const EMULATED_MMA_TILE: MmaTile = {
  config: { m: 16, n: 16, k: 16 },
  lanes: 32,
  sgm: 2,
  sgn: 2,
  fm: 1,
  fn: 1,
  steps: 1,
  emulate: true,
};

/** The subgroup-matrix tile for a device, or the reason it has none. */
export function mmaTileForDevice(r: AdapterReport): { tile: MmaTile | null; reason: string } {
  const none = (reason: string) => ({ tile: null, reason });
  if (!r.features.includes(MMA_FEATURE)) {
    const hint =
      r.platform === 'node' && !flag('ALLOW_UNSAFE_APIS')
        ? ' (Dawn offers it only with RDPP_ALLOW_UNSAFE_APIS=1)'
        : ' (this adapter and driver do not offer it)';
    return none(`the device has no ${MMA_FEATURE}${hint}`);
  }
  if (!r.features.includes('shader-f16')) return none('the device has no shader-f16');
  const offered = (r.subgroupMatrixConfigs ?? []).filter((c) => c.component === 'f16' && c.result === 'f32');
  const config =
    PREFERRED.find((p) => offered.some((c) => c.m === p.m && c.n === p.n && c.k === p.k)) ??
    offered
      .filter((c) => c.m % 8 === 0 && c.n % 8 === 0 && c.k % 8 === 0 && c.m <= 32 && c.n <= 32 && c.k <= 32)
      .sort((a, b) => b.m * b.n * b.k - a.m * a.n * a.k)[0];
  if (!config) return none('the device offers no f16×f16→f32 subgroup matrix of a usable shape');
  const { subgroupMinSize: min, subgroupMaxSize: max } = r.limits;
  if (!min || !max) return none('the device does not report its subgroup size');
  if (min !== max)
    return none(`the subgroup size varies (${min} to ${max}); the kernel needs one fixed size`);
  const tile = mmaLayout(
    { m: config.m, n: config.n, k: config.k },
    max,
    r.limits.maxComputeInvocationsPerWorkgroup,
  );
  const problem = mmaProblem(tile);
  if (problem) return none(`${mmaKey(tile)}: ${problem}`);
  if (mmaSharedBytes(tile) > r.limits.maxComputeWorkgroupStorageSize)
    return none(`${mmaKey(tile)} needs more workgroup memory than the device has`);
  return { tile, reason: '' };
}

let active: MmaTile | null = null;
let status = 'subgroup matrices: not prepared (the SIMT kernels run)';

/** The checked subgroup-matrix tile the f16 GEMMs use now, or null (SIMT kernels). */
export function activeMmaTile(): MmaTile | null {
  return active;
}

/** One line saying whether the GEMMs use subgroup matrices and why (logs, reports). */
export function mmaStatus(): string {
  return status;
}

/** Set the outcome of prepareMma (engine/mma-check.ts), or forget it (null: tests, a new device). */
export function setActiveMma(tile: MmaTile | null, line: string): void {
  active = tile;
  status = line;
}

/** How a tile is described in the status line. */
export function describeMma(t: MmaTile): string {
  const { bm, bn, bk } = mmaBlock(t);
  const c = t.config;
  return `${c.m}×${c.n}×${c.k} f16→f32${t.emulate ? ' (emulated)' : ''}, ${t.sgm * t.sgn} subgroups of ${t.lanes}, ${bm}×${bn}×${bk} blocks${t.db ? ', double-buffered' : ''}`;
}
