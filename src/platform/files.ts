/**
 * Node file access for the data code (src/train/data): the FileSystem interface over node:fs. The only
 * Node-API file of the data pipeline; a browser supplies its own FileSystem (e.g. from dropped files).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { FileSystem } from '../train/data/layouts.js';

export function nodeFileSystem(): FileSystem {
  return {
    list: (dir) => readdirSync(dir),
    isDir: (path) => {
      try {
        return statSync(path).isDirectory();
      } catch {
        return false;
      }
    },
    readBytes: (path) => {
      const b = readFileSync(path);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
  };
}
