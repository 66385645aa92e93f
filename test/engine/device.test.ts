import { describe, expect, it, vi } from 'vitest';
import { flagsFromEnv, pageFlags } from '../../src/engine/flags.js';
import { adapterLine, empty, runtime } from '../../src/engine/index.js';
import { runSelftest, selftestReference } from '../../src/engine/selftest.js';
import { grid1d, main1d } from '../../src/shaders/common.js';
import { cliProcess } from '../helpers/cli.js';
import { sharedPath } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';

describe('Node WebGPU device', () => {
  it('finds a real adapter and reports it', async () => {
    const g = await gpu();
    const r = g.report;
    console.log(adapterLine(r));
    expect(r.platform).toBe('node');
    // a real Vulkan device: lavapipe (llvmpipe) on CPU machines, the GPU on servers; never a null device
    expect(`${r.vendor} ${r.device} ${r.description}`).toMatch(/llvmpipe|nvidia|amd|intel|apple|radeon/i);
    expect(r.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(r.features).toContain('subgroups');
  });

  it('runs a compute kernel and reads back the checked result', async () => {
    await gpu();
    const n = 100_003; // not a multiple of the workgroup size
    const y = empty([n]);
    runtime().run({
      name: 'test_iota_square',
      inputs: [],
      outputs: [{ name: 'y', buffer: y.buffer }],
      uniforms: { n: ['u32', n] },
      workgroups: grid1d(n),
      wgsl: (h) => `${h}
${main1d()}
  if (i >= u.n) { return; }
  let v = f32(i % 1000u);
  y[i] = v * v;
}`,
    });
    const out = await y.read();
    y.dispose();
    for (const i of [0, 1, 999, 1000, 54_321, n - 1]) expect(out[i]).toBe((i % 1000) ** 2);
  });

  it('runs forward + backward of the self-test like the CPU reference', async () => {
    await gpu();
    const got = await runSelftest();
    const ref = selftestReference();
    for (let i = 0; i < ref.y.length; i++) {
      expect(Math.abs(got.y[i]! - ref.y[i]!)).toBeLessThan(1e-6);
      expect(Math.abs(got.da[i]! - ref.da[i]!)).toBeLessThan(1e-6);
    }
  });

  it('turns a device loss into a clear error instead of a hang', async () => {
    const g = await gpu();
    // Use a second device so the shared one stays usable for the other tests.
    const adapter = await g.instance.requestAdapter();
    const device = await adapter!.requestDevice();
    const { GpuContext } = await import('../../src/engine/device.js');
    const lostCtx = new GpuContext(device, g.report, g.instance);
    device.destroy();
    await device.lost;
    expect(() => lostCtx.check()).toThrow(/device was lost/);
    const buf = device.createBuffer({ size: 16, usage: 0x1 | 0x8 });
    await expect(lostCtx.guard(buf.mapAsync(0x1))).rejects.toThrow();
  });

  it('fails a wait that is pending when the device is lost, and keeps nothing of the waits that ended', async () => {
    const g = await gpu();
    const { GpuContext, DeviceLostError } = await import('../../src/engine/device.js');
    let lose: (info: GPUDeviceLostInfo) => void = () => {};
    const lost = new Promise<GPUDeviceLostInfo>((r) => {
      lose = r;
    });
    const reactions = vi.spyOn(lost, 'then');
    const fake = { lost, onuncapturederror: null } as unknown as GPUDevice;
    const ctx = new GpuContext(fake, g.report, g.instance);
    const registered = reactions.mock.calls.length;
    // a long-running service awaits reads and syncs all day: none of them may stay attached to device.lost
    for (let i = 0; i < 1000; i++) await ctx.guard(Promise.resolve(i));
    await expect(ctx.guard(Promise.reject(new Error('map failed')))).rejects.toThrow('map failed');
    expect(reactions.mock.calls.length).toBe(registered);
    expect(ctx.guarded).toBe(0);
    const hanging = ctx.guard(new Promise(() => {}));
    expect(ctx.guarded).toBe(1);
    lose({ reason: 'unknown', message: 'driver reset' } as GPUDeviceLostInfo);
    await expect(hanging).rejects.toThrow(DeviceLostError);
    await expect(hanging).rejects.toThrow(/device was lost \(unknown: driver reset\)/);
    expect(ctx.guarded).toBe(0);
    await expect(ctx.guard(Promise.resolve(1))).rejects.toThrow(DeviceLostError);
  });

  it("with Dawn's skip_validation and disable_robustness (RDPP_DAWN_*) every op still matches the fixtures, and the report names them", () => {
    // a child process: the toggles are chosen when Dawn is created, and this process has its GPU open
    const env = { RDPP_DAWN_SKIP_VALIDATION: '1', RDPP_DAWN_DISABLE_ROBUSTNESS: '1' };
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      // they choose how Node creates Dawn: a browser page (bench --browser) is not given them
      expect(pageFlags(flagsFromEnv({ ...env, RDPP_GEMM_TILE: 't128x128' }))).toEqual({
        GEMM_TILE: 't128x128',
      });
      const info = cliProcess('rdpp.js', ['info']);
      expect(info.code).toBe(0);
      expect(info.out).toContain('dawn toggles: skip_validation, disable_robustness');
      const parity = cliProcess('rdpp.js', ['parity', sharedPath('fixtures', 'golden', 'ops.json')], 300_000);
      expect(parity.out).toMatch(/\b(\d+) passed, 0 failed/);
      expect(parity.code).toBe(0);
    } finally {
      for (const k of Object.keys(env)) if (!(k in saved)) delete process.env[k];
    }
  }, 320_000);
});
