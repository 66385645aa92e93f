/** PNG encoding for Node (pngjs): 8-bit gray, RGB or RGBA pixels, row-major. */
import { PNG } from 'pngjs';

export function encodePng(width: number, height: number, data: Uint8Array, channels: 1 | 3 | 4): Buffer {
  const colorType = channels === 4 ? 6 : channels === 3 ? 2 : 0;
  return PNG.sync.write(
    { width, height, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) } as PNG,
    {
      colorType,
      inputColorType: colorType,
      inputHasAlpha: channels === 4,
      bitDepth: 8,
    },
  );
}
