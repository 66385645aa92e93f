/** `.wasm` files are imported as their bytes (esbuild's binary loader; a vitest plugin does the same). */
declare module '*.wasm' {
  const bytes: Uint8Array<ArrayBuffer>;
  export default bytes;
}

/** The Emscripten decoders of @jsquash (libjpeg-turbo's mozjpeg fork and libwebp compiled to wasm). */
declare module '@jsquash/jpeg/codec/dec/mozjpeg_dec.js' {
  const factory: (module: Record<string, unknown>) => Promise<unknown>;
  export default factory;
}
declare module '@jsquash/webp/codec/dec/webp_dec.js' {
  const factory: (module: Record<string, unknown>) => Promise<unknown>;
  export default factory;
}
/** libwebp's encoder (tests build WebP files with it). */
declare module '@jsquash/webp/codec/enc/webp_enc.js' {
  const factory: (module: Record<string, unknown>) => Promise<unknown>;
  export default factory;
}
