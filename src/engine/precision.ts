/**
 * Which operand precision the GEMM family runs in: the flag PRECISION, where the device can do it.
 *
 * `f16` is PyTorch AMP's autocast for matmul and convolutions, done inside the one GEMM core: the loaders
 * read f32 tensors (or f16 activations, see below), each operand value is rounded to f16 where it is staged
 * in workgroup memory, and the products are summed in f32 (what tensor cores do with f16 inputs). Everything
 * AMP keeps in f32 stays f32 here too: bias and fused epilogues, norms' statistics, losses, Sinkhorn,
 * softmax, cosine, Adam, gradients and weights. Activations are stored in f16: the frozen ones — the
 * teacher's, and in evaluation the whole model's (flag F16_STORAGE, frozenActivationDtype,
 * src/model/frozen.ts) — and the student's in training, which its backward reads (flag F16_TRAIN_STORAGE,
 * trainingActivationDtype, src/model/rdpp.ts).
 * Weight gradients are GEMMs like the rest and run in f16 operands with f32 accumulation, as under AMP.
 *
 * The kernels need the WGSL extension `f16` (device feature `shader-f16`). A device without it is not an
 * error: the engine says so once and runs f32, so a command line or a saved setting that asks for f16
 * still works on every GPU.
 */
import { flag, PRECISIONS, type Precision } from './flags.js';
import { runtime } from './runtime.js';
import type { DType } from './tensor.js';

/** Check a precision given by a user (CLI option, setting) with a message naming the choices. */
export function parsePrecision(value: string, where = 'precision'): Precision {
  if (!(PRECISIONS as readonly string[]).includes(value))
    throw new Error(`${where}: '${value}' is not a precision (use ${PRECISIONS.join(' or ')})`);
  return value as Precision;
}

/**
 * The precision the GEMMs run in for a requested one on a device with or without `shader-f16`, and the
 * warning to print when the request cannot be honoured (null when it can).
 */
export function selectPrecision(
  requested: string,
  hasShaderF16: boolean,
): { precision: Precision; warning: string | null } {
  const p = parsePrecision(requested, 'PRECISION');
  if (p === 'f16' && !hasShaderF16)
    return {
      precision: 'f32',
      warning:
        'PRECISION=f16: this GPU (or its WebGPU implementation) does not offer shader-f16, so the GEMMs run in f32.',
    };
  return { precision: p, warning: null };
}

let warned = false;

/** The precision of the next GEMM: the flag PRECISION on the current device (warns once if it falls back). */
export function gemmPrecision(): Precision {
  const requested = flag('PRECISION');
  if (requested === 'f32') return 'f32';
  const { precision, warning } = selectPrecision(requested, runtime().gpu.has('shader-f16'));
  if (warning && !warned) {
    warned = true;
    console.warn(`warning: ${warning}`);
  }
  return precision;
}

/** Forget that the fallback warning was printed (tests). */
export function resetPrecisionWarning(): void {
  warned = false;
}

let activations: DType = 'f32';

/** The storage type conv2dFused gives its output when the call names none (see withActivations). */
export function activationDtype(): DType {
  return activations;
}

/**
 * Run `fn` with conv2dFused's outputs stored as `dtype` unless a call says otherwise (an autocast-like
 * scope for an inference chain; restored afterwards, also when fn throws).
 */
export function withActivations<T>(dtype: DType, fn: () => T): T {
  const before = activations;
  activations = dtype;
  try {
    return fn();
  } finally {
    activations = before;
  }
}

/**
 * The storage type of a frozen network's activations (the teacher's; the whole model's in evaluation):
 * f16 when the GEMMs run in f16 on this device and the flag F16_STORAGE is on, else f32.
 */
export function frozenActivationDtype(): DType {
  return flag('F16_STORAGE') && gemmPrecision() === 'f16' ? 'f16' : 'f32';
}

/**
 * The storage type of the student's activations in training (projection, OCBE, decoder; the ones its
 * backward reads): f16 where frozen activations are f16 and the flag F16_TRAIN_STORAGE is on, else f32.
 */
export function trainingActivationDtype(): DType {
  return flag('F16_TRAIN_STORAGE') ? frozenActivationDtype() : 'f32';
}
