/**
 * Keras teacher parity (fixtures/keras/keras_resnet50.json): the RD++ taps activation_9/_21/_39 of the
 * Keras ResNet-50 for the fixture's inputs, compared by digest with the float64 reference. The fixture
 * names no tolerance; its README says a float32 implementation matches to about 1e-4 relative, which is
 * the bound used here.
 */
import { scope, tensor } from '../engine/index.js';
import { formulaPhase } from '../model/init.js';
import { normalise } from '../model/preprocess.js';
import type { KerasResnet50Teacher } from '../model/teacher/keras-resnet50.js';
import { type Digest, digestError } from './model.js';

export const KERAS_TOLERANCE = 1e-4;
const TAPS = ['activation_9', 'activation_21', 'activation_39'];

export interface RgbImage {
  width: number;
  height: number;
  /** RGBA bytes, row-major */
  data: Uint8Array;
}

export interface KerasFixture {
  inputs: Record<string, string>;
  cases: Record<string, Record<string, Digest>>;
}

/** The fixture's inputs as RGB [0, 1] CHW; `readPng` resolves the image path named in the fixture. */
export function kerasFixtureInputs(
  fx: KerasFixture,
  readPng: (relPath: string) => RgbImage,
): Map<string, { rgb: Float32Array; size: number }> {
  const out = new Map<string, { rgb: Float32Array; size: number }>();
  for (const [name, desc] of Object.entries(fx.inputs)) {
    if (name.startsWith('formula')) {
      const size = Number(name.slice('formula'.length));
      const n = 3 * size * size;
      const phase = formulaPhase('input.rgb');
      const rgb = new Float32Array(n);
      // biome-ignore lint/suspicious/noApproximativeNumericConstant: the fixture generator's literal 0.7071, not √½
      for (let i = 0; i < n; i++) rgb[i] = (127.5 + 127.5 * Math.sin(0.7071 * i + phase)) / 255;
      out.set(name, { rgb, size });
    } else {
      const m = /rows 0\.\.(\d+) and columns 0\.\.(\d+) of (\S+\.png)/.exec(desc);
      if (!m) throw new Error(`keras fixture: cannot understand the input description '${desc}'`);
      const size = Number(m[1]) + 1;
      const img = readPng(m[3]!);
      if (img.width < size || img.height < size)
        throw new Error(`keras fixture: ${m[3]} is smaller than ${size}×${size}`);
      const rgb = new Float32Array(3 * size * size);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          for (let c = 0; c < 3; c++)
            rgb[c * size * size + y * size + x] = img.data[(y * img.width + x) * 4 + c]! / 255;
      out.set(name, { rgb, size });
    }
  }
  return out;
}

export interface KerasCheck {
  input: string;
  tap: string;
  error: number;
  pass: boolean;
}

export async function runKerasParity(
  fx: KerasFixture,
  teacher: KerasResnet50Teacher,
  readPng: (relPath: string) => RgbImage,
): Promise<KerasCheck[]> {
  const checks: KerasCheck[] = [];
  for (const [name, input] of kerasFixtureInputs(fx, readPng)) {
    const x = normalise(input.rgb, input.size, input.size, 'caffe');
    const taps = scope(() => teacher.forward(tensor(x, [1, 3, input.size, input.size])));
    for (let k = 0; k < 3; k++) {
      const d = fx.cases[name]?.[TAPS[k]!];
      if (!d) throw new Error(`keras fixture: no digest for ${name}.${TAPS[k]}`);
      const t = taps[k]!;
      const error =
        t.shape.slice(1).join() === d.shape.join()
          ? digestError(await t.read(), d)
          : Number.POSITIVE_INFINITY;
      checks.push({ input: name, tap: TAPS[k]!, error, pass: error <= KERAS_TOLERANCE });
      t.dispose();
    }
  }
  return checks;
}
