/**
 * One way to get a GPU device everywhere: Node (Dawn through the `webgpu` package, handed in by
 * platform/node.ts) and the browser (`navigator.gpu`, platform/browser.ts). This file is platform-neutral:
 * it receives a `GPU` object and a hint explaining how to get one on the current platform.
 *
 * It requests the optional features the engine can use (`shader-f16`, `subgroups`, `timestamp-query`,
 * `chromium-experimental-subgroup-matrix` when unsafe APIs are allowed) and the adapter's largest limits,
 * reports the adapter in one object used by every log, benchmark and report, and turns the two classic
 * failure modes into clear errors: no adapter (say what to install) and a lost device (fail, never hang).
 */

export type Platform = 'node' | 'browser';

/** What every log, benchmark and report says about the GPU. */
export interface AdapterReport {
  platform: Platform;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** Optional features that were granted to the device. */
  features: string[];
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupSizeX: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
  };
  /**
   * The subgroup-matrix (tensor-core) shapes the adapter offers (Dawn's adapter.info.subgroupMatrixConfigs;
   * usable only when `chromium-experimental-subgroup-matrix` is among the features). See engine/mma.ts.
   */
  subgroupMatrixConfigs?: SubgroupMatrixConfig[];
  /** Dawn toggles the platform asked for that change behaviour or speed (Node: flags.ts DAWN_*), if any. */
  toggles?: string[];
}

/** One subgroup-matrix configuration: M×N results of `result` type from M×K by K×N `component` operands. */
export interface SubgroupMatrixConfig {
  component: string;
  result: string;
  m: number;
  n: number;
  k: number;
}

export class NoAdapterError extends Error {
  override name = 'NoAdapterError';
}

export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}

/** Features requested when the adapter has them. */
const WANTED_FEATURES = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix',
];

/** Limits raised to the adapter's maximum. */
const WANTED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
] as const;

export interface OpenOptions {
  platform: Platform;
  /** Platform-specific advice printed when no adapter is found (what to install, which flag to set). */
  noAdapterHint: string;
  powerPreference?: GPUPowerPreference;
  /** Compatibility mode for backends that only offer it (OpenGL ES); core is the default. */
  featureLevel?: 'core' | 'compatibility';
  /** the Dawn toggles the platform enabled (reported, not applied here) */
  toggles?: string[];
}

/** A GPU device plus what we know about it. The engine holds exactly one. */
export class GpuContext {
  private lostReason: string | null = null;
  private errors: string[] = [];
  /** the rejections of the guard() calls now waiting: each is called if the device is lost meanwhile */
  private readonly waiting = new Set<(e: Error) => void>();
  /**
   * Called when a guard() wait begins, if set, and what it returns when the wait ends: the platform's say
   * in how the wait polls (Node: platform/dawn-poll.ts, the flag DAWN_POLL).
   */
  onWait: (() => () => void) | null = null;
  readonly features: ReadonlySet<string>;

  constructor(
    readonly device: GPUDevice,
    readonly report: AdapterReport,
    /**
     * The GPU object (in Node: Dawn's instance). Held here on purpose: if it is garbage-collected, Dawn
     * frees the instance under a live device and crashes in ProcessEvents (seen as random segfaults).
     */
    readonly instance: GPU,
  ) {
    this.features = new Set(report.features);
    device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message || 'no message'}`;
      const e = this.lostError();
      for (const fail of this.waiting) fail(e);
      this.waiting.clear();
    });
    device.onuncapturederror = (ev) => {
      if (this.errors.length < 20) this.errors.push(ev.error.message);
    };
  }

  get isLost(): boolean {
    return this.lostReason !== null;
  }

  /** Throws a clear error if the device was lost or a GPU validation error happened since the last check. */
  check(): void {
    if (this.lostReason !== null) throw this.lostError();
    if (this.errors.length > 0) {
      const msgs = this.errors.splice(0);
      throw new Error(`GPU validation error(s):\n${msgs.join('\n')}`);
    }
  }

  private lostError(): DeviceLostError {
    return new DeviceLostError(
      `the GPU device was lost (${this.lostReason}). Everything on it is gone; ` +
        'reload the page or restart the process. If it keeps happening, the GPU ran out of memory or the driver reset it (try a smaller batch or image size).',
    );
  }

  /**
   * Await a GPU promise, but fail with DeviceLostError instead of hanging if the device is lost meanwhile.
   * Not by racing `device.lost`: every race would leave a reaction on that promise, which stays pending for
   * the device's life — a leak of every read and sync ever awaited (an inspection line's `predict` service
   * awaits two per image). A waiting call is in a set instead, and leaves it when its promise settles.
   */
  guard<T>(p: Promise<T>): Promise<T> {
    if (this.lostReason !== null) {
      // p fails too (an AbortError from Dawn): the device-lost error is the one to report
      p.catch(() => {});
      return Promise.reject(this.lostError());
    }
    const end = this.onWait?.();
    return new Promise<T>((resolve, reject) => {
      // the wait ends once: by p settling or by a device loss, whichever comes first
      let ended = false;
      const finish = (): boolean => {
        if (ended) return false;
        ended = true;
        this.waiting.delete(fail);
        end?.();
        return true;
      };
      const fail = (e: Error) => {
        if (finish()) reject(e);
      };
      this.waiting.add(fail);
      p.then(
        (v) => {
          if (finish()) resolve(v);
        },
        (e) => {
          if (finish()) reject(e);
        },
      );
    });
  }

  /** guard() calls now waiting (for tests). */
  get guarded(): number {
    return this.waiting.size;
  }

  has(feature: string): boolean {
    return this.features.has(feature);
  }
}

/** Request an adapter and a device with the features and limits the engine wants. */
export async function openGpu(gpu: GPU | undefined, opts: OpenOptions): Promise<GpuContext> {
  if (!gpu) throw new NoAdapterError(`WebGPU is not available here. ${opts.noAdapterHint}`);
  const req: GPURequestAdapterOptions & { featureLevel?: string } = {
    powerPreference: opts.powerPreference ?? 'high-performance',
  };
  if (opts.featureLevel) req.featureLevel = opts.featureLevel;
  const adapter = await gpu.requestAdapter(req);
  if (!adapter) throw new NoAdapterError(`no WebGPU adapter was found. ${opts.noAdapterHint}`);

  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  const alim = adapter.limits as unknown as Record<string, number>;
  for (const k of WANTED_LIMITS) if (typeof alim[k] === 'number') requiredLimits[k] = alim[k];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info;
  const dl = device.limits as unknown as Record<string, number>;
  const report: AdapterReport = {
    platform: opts.platform,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    features: [...device.features].sort(),
    limits: {
      maxBufferSize: dl.maxBufferSize!,
      maxStorageBufferBindingSize: dl.maxStorageBufferBindingSize!,
      maxComputeWorkgroupStorageSize: dl.maxComputeWorkgroupStorageSize!,
      maxComputeInvocationsPerWorkgroup: dl.maxComputeInvocationsPerWorkgroup!,
      maxComputeWorkgroupSizeX: dl.maxComputeWorkgroupSizeX!,
      maxComputeWorkgroupsPerDimension: dl.maxComputeWorkgroupsPerDimension!,
      maxStorageBuffersPerShaderStage: dl.maxStorageBuffersPerShaderStage!,
    },
  };
  const sub = info as unknown as { subgroupMinSize?: number; subgroupMaxSize?: number };
  if (sub.subgroupMinSize) report.limits.subgroupMinSize = sub.subgroupMinSize;
  if (sub.subgroupMaxSize) report.limits.subgroupMaxSize = sub.subgroupMaxSize;
  const sgm = (info as unknown as { subgroupMatrixConfigs?: Iterable<DawnSubgroupMatrixConfig> })
    .subgroupMatrixConfigs;
  if (sgm) report.subgroupMatrixConfigs = [...sgm].map(fromDawnConfig);
  if (opts.toggles?.length) report.toggles = [...opts.toggles];
  return new GpuContext(device, report, gpu);
}

interface DawnSubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

function fromDawnConfig(c: DawnSubgroupMatrixConfig): SubgroupMatrixConfig {
  return {
    component: String(c.componentType),
    result: String(c.resultComponentType),
    m: c.M,
    n: c.N,
    k: c.K,
  };
}

/** One line naming the adapter, for logs and benchmark results. */
/**
 * The GPU itself, without what a session asked of it (features, limits): the same for every run on one
 * adapter and driver, so measurements made on it (tile tables) can be matched to it later.
 */
export function adapterIdentity(r: AdapterReport): string {
  const name = [r.vendor, r.architecture, r.device].filter(Boolean).join(' / ') || 'unknown adapter';
  const desc = r.description && !name.includes(r.description) ? ` (${r.description})` : '';
  return `${r.platform}: ${name}${desc}${r.isFallbackAdapter ? ' [fallback]' : ''}`;
}

export function adapterLine(r: AdapterReport): string {
  return `${adapterIdentity(r)}; features: ${r.features.join(', ') || 'none'}; maxStorageBinding ${Math.round(r.limits.maxStorageBufferBindingSize / 2 ** 20)} MiB${r.toggles?.length ? `; dawn toggles: ${r.toggles.join(', ')}` : ''}`;
}
