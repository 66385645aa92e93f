/**
 * Headless Chromium with WebGPU, for Node code that drives the browser bundle (dist/web): `rdpp bench
 * --browser` and the browser tests (test/browser/harness.ts). playwright-core and a Chromium are
 * development tools (`bash scripts/setup.sh --browser` installs both), loaded only when asked for, so the
 * command-line program runs without them.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import type { Browser } from 'playwright-core';

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.map': 'application/json',
  '.json': 'application/json',
  '.css': 'text/css',
  '.png': 'image/png',
};

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Serves `root` on 127.0.0.1 (a free port), and `mounts` (URL prefix → folder); resolves to its URL. */
export function serveFolder(
  root: string,
  mounts: Record<string, string> = {},
): Promise<{ server: Server; url: string }> {
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
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` }),
    ),
  );
}

/** The system Chromium, headless, with WebGPU on (its own Dawn: a GPU, or SwiftShader without one). */
export async function launchChromium(): Promise<Browser> {
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    throw new Error(
      `playwright-core is not installed (it drives Chromium; run \`bash scripts/setup.sh --browser\` in the project): ${(e as Error).message}`,
    );
  }
  try {
    return await chromium.launch({
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
    throw new Error(
      `cannot start Chromium at ${CHROMIUM} (run \`bash scripts/setup.sh --browser\`, or set CHROMIUM_PATH): ${(e as Error).message}`,
    );
  }
}
