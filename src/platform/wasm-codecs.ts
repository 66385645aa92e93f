/**
 * JPEG and WebP decoding through wasm builds of the reference libraries, registered with the data code
 * (src/train/data/decode.ts) once per process: `await initImageCodecs()` (the CLI's main does it).
 *
 * - JPEG: mozjpeg's decoder (a libjpeg-turbo fork; @jsquash/jpeg). Measured bit-identical to libvips /
 *   libjpeg-turbo (sharp), i.e. to what OpenCV's imread decodes, at 4:2:0 and 4:4:4, where jpeg-js differed
 *   on ~43 % of the samples by up to 9 levels; and 10–30× faster than jpeg-js.
 * - WebP: libwebp's decoder (@jsquash/webp); lossless files decode to the exact pixels.
 * The wasm bytes are inlined by the bundler, so dist/ needs no node_modules (a GPU server has only dist/
 * and the `webgpu` package); no native module (sharp) is involved. The decoders are instantiated
 * synchronously (the Emscripten module object is usable as soon as the factory returns), so decoding stays
 * synchronous; the libraries' error messages are captured into the ImageError instead of printed.
 */
import mozjpegFactory from '@jsquash/jpeg/codec/dec/mozjpeg_dec.js';
import jpegWasm from '@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm';
import webpFactory from '@jsquash/webp/codec/dec/webp_dec.js';
import webpWasm from '@jsquash/webp/codec/dec/webp_dec.wasm';
import { type RgbaImage, setWasmDecoders } from '../train/data/decode.js';

interface EmscriptenDecoder {
  decode(data: Uint8Array, ...rest: unknown[]): RgbaImage | null;
}

/** An Emscripten module instantiated synchronously; `messages` collects what the library prints. */
function instantiate(
  factory: (m: Record<string, unknown>) => Promise<unknown>,
  bytes: Uint8Array<ArrayBuffer>,
  messages: string[],
): EmscriptenDecoder {
  const compiled = new WebAssembly.Module(bytes);
  const module: Record<string, unknown> = {
    noInitialRun: true,
    print: (m: string) => messages.push(m),
    printErr: (m: string) => messages.push(m),
    instantiateWasm: (
      imports: WebAssembly.Imports,
      done: (i: WebAssembly.Instance) => void,
    ): WebAssembly.Exports => {
      const instance = new WebAssembly.Instance(compiled, imports);
      done(instance);
      return instance.exports;
    },
  };
  factory(module).catch(() => {}); // the module object is ready synchronously; its promise is not needed
  if (typeof module.decode !== 'function') throw new Error('wasm image decoder did not initialise');
  return module as unknown as EmscriptenDecoder;
}

/** Call a wasm decoder; failures become one Error carrying the library's own message. */
function guarded(name: string, dec: EmscriptenDecoder, messages: string[], args: unknown[]) {
  return (data: Uint8Array): RgbaImage => {
    messages.length = 0;
    let out: RgbaImage | null = null;
    try {
      out = dec.decode(data, ...args);
    } catch {
      out = null;
    }
    if (!out) throw new Error(messages.join('; ') || `the ${name} decoder rejected the data`);
    return out;
  };
}

let ready = false;

/** Register the JPEG and WebP decoders (idempotent; a few ms). */
export async function initImageCodecs(): Promise<void> {
  if (ready) return;
  const jm: string[] = [];
  const wm: string[] = [];
  const jpeg = instantiate(mozjpegFactory, jpegWasm, jm);
  const webp = instantiate(webpFactory, webpWasm, wm);
  // preserveOrientation false: EXIF orientation is applied by decode.ts, as imread does
  setWasmDecoders({ jpeg: guarded('JPEG', jpeg, jm, [false]), webp: guarded('WebP', webp, wm, []) });
  ready = true;
}
