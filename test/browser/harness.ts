/**
 * Browser test harness: serves dist/web from 127.0.0.1, starts the system Chromium through
 * playwright-core with WebGPU enabled, and fails on any console error or page error.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.map': 'application/json',
  '.json': 'application/json',
  '.css': 'text/css',
  '.png': 'image/png',
};

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface Harness {
  page: Page;
  url: string;
  errors: string[];
  close: () => Promise<void>;
}

/** Serves `root`, and `mounts` (URL prefix → folder) for fixtures. */
function serve(root: string, mounts: Record<string, string>): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!)).replace(/^(\.\.[/\\])+/, '');
    const mount = Object.keys(mounts).find((m) => path.startsWith(m));
    const file = mount
      ? join(mounts[mount]!, path.slice(mount.length))
      : join(root, path === '/' ? 'index.html' : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end('not found');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

export async function openBrowser(root = 'dist/web', mounts: Record<string, string> = {}): Promise<Harness> {
  const server = await serve(root, mounts);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--enable-unsafe-webgpu',
        '--enable-features=Vulkan',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        '--no-first-run',
      ],
    });
  } catch (e) {
    server.close();
    throw new Error(
      `cannot start Chromium at ${CHROMIUM} (run scripts/setup.sh --browser): ${(e as Error).message}`,
    );
  }
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  return {
    page,
    url,
    errors,
    close: async () => {
      await browser.close();
      await new Promise((r) => server.close(r));
    },
  };
}
