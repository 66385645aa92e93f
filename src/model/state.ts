/**
 * A network's state: named tensors in state_dict order, with the official PyTorch names (so checkpoints
 * interoperate), split into trainable parameters and buffers (BN running statistics).
 *
 * Networks declare their tensors with the helpers below (`conv`, `deconv`, `bn`), then either initialise
 * them (official rules, seeded) or load them (formula, safetensors, .pth). Loading checks every name and
 * shape first and changes nothing unless everything matches: never a partially loaded model.
 */
import {
  type ConvWeight,
  type DType,
  keep,
  type PackedConvWeight,
  packConvWeight,
  runtime,
  type Tensor,
  tensor,
} from '../engine/index.js';
import { formulaTensor, type InitRule, initTensor, type Rng } from './init.js';

export interface TensorDecl {
  name: string;
  shape: number[];
  /** trainable parameter (false: a buffer such as running statistics) */
  trainable: boolean;
  init: InitRule;
  /** a conv weight [Co, Ci, KH, KW] (not a transposed conv's): packConvWeights may store it packed */
  convWeight?: boolean;
}

export interface HostArray {
  shape: number[];
  data: Float32Array;
}

export class StateError extends Error {
  override name = 'StateError';
}

export class NetState {
  readonly decls: TensorDecl[] = [];
  private tensors = new Map<string, Tensor>();
  /** conv weights stored for inference only (packConvWeights): no longer in `tensors` */
  private packed = new Map<string, PackedConvWeight>();

  /**
   * @param prefix the module prefix used in names and messages ('encoder.', 'proj.', 'bn.', 'decoder.')
   * @param frozen a frozen network (the teacher) never records gradients for its tensors
   */
  constructor(
    readonly prefix: string,
    readonly frozen = false,
  ) {}

  /** Declare a tensor (state_dict order = declaration order). */
  declare(
    name: string,
    shape: number[],
    trainable: boolean,
    init: InitRule,
    opts: { convWeight?: boolean } = {},
  ): void {
    if (this.decls.some((d) => d.name === name)) throw new Error(`duplicate tensor name ${name}`);
    this.decls.push({ name, shape, trainable, init, ...(opts.convWeight ? { convWeight: true } : {}) });
  }

  /** Conv2d weight [out, in, k, k] (+ bias [out]). */
  conv(
    name: string,
    cout: number,
    cin: number,
    k: number,
    opts: { bias?: boolean; init: 'kaiming' | 'default' },
  ): void {
    const w: InitRule =
      opts.init === 'kaiming'
        ? { kind: 'kaiming_normal_fan_out' }
        : { kind: 'uniform_fan_in', fanIn: cin * k * k };
    this.declare(`${name}.weight`, [cout, cin, k, k], true, w, { convWeight: true });
    if (opts.bias) this.declare(`${name}.bias`, [cout], true, { kind: 'uniform_fan_in', fanIn: cin * k * k });
  }

  /** ConvTranspose2d 2×2 weight [in, out, 2, 2]; PyTorch's default init takes fan_in from dim 1 (= out·4). */
  deconv(name: string, cin: number, cout: number): void {
    this.declare(`${name}.weight`, [cin, cout, 2, 2], true, { kind: 'uniform_fan_in', fanIn: cout * 4 });
  }

  /** BatchNorm2d: weight, bias (trainable), running_mean, running_var (buffers). */
  bn(name: string, c: number): void {
    this.declare(`${name}.weight`, [c], true, { kind: 'const', value: 1 });
    this.declare(`${name}.bias`, [c], true, { kind: 'const', value: 0 });
    this.declare(`${name}.running_mean`, [c], false, { kind: 'const', value: 0 });
    this.declare(`${name}.running_var`, [c], false, { kind: 'const', value: 1 });
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) {
      if (this.packed.has(name))
        throw new Error(
          `${this.prefix}: '${name}' is packed for inference (packConvWeights): it can only be read by a conv (convWeight)`,
        );
      throw new Error(`${this.prefix}: tensor '${name}' is not initialised (call init or load first)`);
    }
    return t;
  }

  /** A conv weight as conv2d / conv2dFused take it: packed when packConvWeights packed it. */
  convWeight(name: string): ConvWeight {
    return this.packed.get(name) ?? this.get(name);
  }

  /** Whether packConvWeights has run: the state can run inference only (no gradients, no toHost). */
  get isPacked(): boolean {
    return this.packed.size > 0;
  }

  /**
   * For a network that will only run inference (`rdpp test`, `rdpp predict`): store every conv weight with
   * more than one tap the way the forward GEMM reads it (PackedConvWeight) and free the original, so no
   * inference call copies a weight and no weight is resident twice. After it the state cannot be trained,
   * loaded into or read back (get, parameters, named, toHost throw for packed names). Transposed convs
   * (read as they are) stay tensors, and so do 1×1 convs in f32 (read as they are). `dtype` f16 is for f16
   * GEMMs (PRECISION=f16), which round every weight to f16 anyway: the same results from half the bytes,
   * 1×1 weights included.
   */
  packConvWeights(dtype: DType = 'f32'): void {
    for (const d of this.decls) {
      // a 1×1 weight is read as it is: only its f16 copy saves anything
      const oneTap = d.shape[2]! * d.shape[3]! < 2;
      if (!d.convWeight || (oneTap && dtype !== 'f16') || this.packed.has(d.name)) continue;
      const w = this.get(d.name);
      this.packed.set(d.name, packConvWeight(w, dtype));
      this.tensors.delete(d.name);
      w.grad?.dispose();
      w.dispose();
    }
  }

  has(name: string): boolean {
    return this.decls.some((d) => d.name === name);
  }

  /** Trainable tensors in declaration order. */
  parameters(): Tensor[] {
    if (this.frozen) return [];
    return this.decls.filter((d) => d.trainable).map((d) => this.get(d.name));
  }

  named(): [string, Tensor][] {
    return this.decls.map((d) => [d.name, this.get(d.name)]);
  }

  parameterCount(): number {
    return this.decls.filter((d) => d.trainable).reduce((a, d) => a + d.shape.reduce((x, y) => x * y, 1), 0);
  }

  /** Initialise with the official rules. */
  init(rng: Rng): void {
    this.setAll(
      new Map(this.decls.map((d) => [d.name, { shape: d.shape, data: initTensor(d.shape, d.init, rng) }])),
    );
  }

  /** Initialise with the golden fixtures' formula (names prefixed as in the fixtures, e.g. 'encoder.'). */
  initFormula(fixturePrefix: string): void {
    this.setAll(
      new Map(
        this.decls.map((d) => [
          d.name,
          { shape: d.shape, data: formulaTensor(fixturePrefix + d.name, d.shape) },
        ]),
      ),
    );
  }

  /**
   * Check host arrays against the declarations without touching the GPU: every declared tensor present
   * (unless `optional`) with the right shape, and with `strict` no extra entries. Throws a StateError
   * listing the problems.
   */
  validate(
    source: Map<string, HostArray>,
    what: string,
    opts: { strict?: boolean; optional?: (name: string) => boolean } = {},
  ): void {
    const problems: string[] = [];
    for (const d of this.decls) {
      const s = source.get(d.name);
      if (!s) {
        if (!opts.optional?.(d.name)) problems.push(`missing '${d.name}' [${d.shape}]`);
        continue;
      }
      if (s.shape.join() !== d.shape.join())
        problems.push(`'${d.name}': expected shape [${d.shape}], found [${s.shape}]`);
      else if (s.data.length !== d.shape.reduce((a, b) => a * b, 1))
        problems.push(`'${d.name}': wrong element count`);
    }
    if (opts.strict) {
      const known = new Set(this.decls.map((d) => d.name));
      for (const k of source.keys()) if (!known.has(k)) problems.push(`unexpected '${k}'`);
    }
    if (problems.length) {
      const head = problems.slice(0, 12).join('\n  ');
      const more = problems.length > 12 ? `\n  … and ${problems.length - 12} more` : '';
      throw new StateError(`${what} does not fit the ${this.prefix} network:\n  ${head}${more}`);
    }
  }

  /**
   * Load host arrays by name. Every declared tensor must be present with the right shape (extra entries
   * are reported when `strict`); nothing is changed unless all checks pass (see `validate`).
   */
  load(
    source: Map<string, HostArray>,
    what: string,
    opts: { strict?: boolean; optional?: (name: string) => boolean } = {},
  ): void {
    this.validate(source, what, opts);
    const present = new Map([...source].filter(([k]) => this.has(k)));
    // keep optional-but-absent tensors at their current values (or initialise them to their constant rule)
    for (const d of this.decls) {
      if (present.has(d.name)) continue;
      if (this.tensors.has(d.name)) continue;
      if (d.init.kind !== 'const') throw new StateError(`${what}: '${d.name}' is absent and has no default`);
      present.set(d.name, {
        shape: d.shape,
        data: new Float32Array(d.shape.reduce((a, b) => a * b, 1)).fill(d.init.value),
      });
    }
    this.setAll(present);
  }

  /**
   * Set tensors. An existing tensor is overwritten in place (same GPU buffer, same Tensor object), so
   * optimizers and anything else holding it stay valid; its gradient is dropped.
   */
  private setAll(values: Map<string, HostArray>): void {
    if (this.isPacked)
      throw new StateError(`${this.prefix}: the weights are packed for inference and cannot be loaded into`);
    for (const [name, v] of values) {
      const decl = this.decls.find((d) => d.name === name)!;
      const old = this.tensors.get(name);
      if (old && !old.isDisposed) {
        runtime().write(old.buffer, v.data);
        old.grad?.dispose();
        old.grad = null;
        continue;
      }
      const t = keep(tensor(v.data, v.shape));
      t.name = `${this.prefix}${name}`;
      t.requiresGrad = decl.trainable && !this.frozen;
      this.tensors.set(name, t);
    }
  }

  /** Read everything back to the CPU (for checkpoints). */
  async toHost(): Promise<Map<string, HostArray>> {
    // every read is issued before any is awaited: one wait for the GPU instead of one per tensor
    const data = await Promise.all(this.decls.map((d) => this.get(d.name).read()));
    return new Map(this.decls.map((d, i) => [d.name, { shape: d.shape, data: data[i]! }]));
  }

  dispose(): void {
    for (const t of this.tensors.values()) {
      t.grad?.dispose();
      t.dispose();
    }
    this.tensors.clear();
    for (const p of this.packed.values()) p.dispose();
    this.packed.clear();
  }
}
