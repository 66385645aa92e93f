/**
 * TIFF → 8-bit RGB through the `tiff` package (image-js; pure JS: uncompressed, LZW, Deflate, PackBits
 * aside; 1/8/16-bit gray, 8/16-bit RGB, palette; the first page), converted to 8 bits the way libtiff's
 * RGBA interface does (what OpenCV's imread uses for an 8-bit result): 16-bit gray keeps the high byte,
 * 16-bit RGB becomes (v + 128) / 257, WhiteIsZero is inverted, palette entries keep their high byte when
 * the colour map is 16-bit, alpha is dropped (libtiff would premultiply unassociated alpha: such files can
 * differ). Separate from decode.ts so the browser app can decode TIFF (which browsers mostly cannot)
 * without pulling in the Node-flavoured PNG decoder. Errors are plain Errors with the reason.
 */
import { decode as tiffDecode } from 'tiff';

/** The PIL mode of the decoded image, as decode.ts's PilMode. */
export type TiffPilMode = '1' | 'L' | 'P' | 'RGB';

const PHOTOMETRIC: Record<number, string> = { 4: 'transparency mask', 5: 'CMYK', 6: 'YCbCr', 8: 'CIELab' };

export function decodeTiffRgb(bytes: Uint8Array): {
  width: number;
  height: number;
  rgb: Uint8Array;
  pilMode: TiffPilMode;
} {
  let ifd: ReturnType<typeof tiffDecode>[number] | undefined;
  try {
    ifd = tiffDecode(bytes, { pages: [0] })[0];
  } catch (e) {
    throw new Error(`corrupt or unsupported TIFF data: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!ifd) throw new Error('corrupt TIFF: no image in the file');
  const { width, height, bitsPerSample: bits, samplesPerPixel: spp, type } = ifd;
  const fail = (why: string): never => {
    throw new Error(`${why}; convert it to an 8- or 16-bit gray or RGB TIFF, or to PNG`);
  };
  if (PHOTOMETRIC[type]) fail(`${PHOTOMETRIC[type]} TIFF is not supported`);
  if (ifd.sampleFormat === 3) fail(`floating-point TIFF (${bits}-bit float) is not supported`);
  if (bits !== 1 && bits !== 8 && bits !== 16) fail(`${bits}-bit TIFF is not supported`);
  if (!(width > 0 && height > 0)) fail(`corrupt TIFF: size ${width}×${height}`);
  const data = ifd.data as Uint8Array | Uint16Array;
  const n = width * height;
  if (data.length < n * spp) fail('corrupt TIFF: decoded data is shorter than the image');
  const rgb = new Uint8Array(n * 3);
  let pilMode: TiffPilMode;
  if (type === 3) {
    const pal = ifd.palette ?? fail('corrupt TIFF: palette image without a colour map');
    const wide = pal.some((c) => c[0] > 255 || c[1] > 255 || c[2] > 255);
    for (let i = 0; i < n; i++) {
      const c = pal[data[i * spp]!] ?? [0, 0, 0];
      for (let k = 0; k < 3; k++) rgb[i * 3 + k] = wide ? c[k]! >> 8 : c[k]!;
    }
    pilMode = 'P';
  } else if (type === 0 || type === 1) {
    // WhiteIsZero arrives inverted already (the tiff package does it)
    for (let i = 0; i < n; i++) {
      let v = data[i * spp]!;
      if (bits === 16) v >>= 8;
      else if (bits === 1) v = v ? 255 : 0;
      rgb[i * 3] = v;
      rgb[i * 3 + 1] = v;
      rgb[i * 3 + 2] = v;
    }
    pilMode = bits === 1 ? '1' : 'L';
  } else if (type === 2) {
    if (spp < 3) fail(`corrupt TIFF: RGB with ${spp} samples per pixel`);
    for (let i = 0; i < n; i++)
      for (let k = 0; k < 3; k++) {
        const v = data[i * spp + k]!;
        rgb[i * 3 + k] = bits === 16 ? Math.floor((v + 128) / 257) : v;
      }
    pilMode = 'RGB';
  } else return fail(`TIFF photometric interpretation ${type} is not supported`);
  return { width, height, rgb, pilMode };
}
