/**
 * Browser test harness: serves dist/web from 127.0.0.1, starts the system Chromium through
 * playwright-core with WebGPU enabled (src/platform/chromium.ts), and fails on any console error or page
 * error.
 */
import type { Browser, Page } from 'playwright-core';
import { launchChromium, serveFolder } from '../../src/platform/chromium.js';

export interface Harness {
  page: Page;
  url: string;
  errors: string[];
  close: () => Promise<void>;
}

export async function openBrowser(root = 'dist/web', mounts: Record<string, string> = {}): Promise<Harness> {
  const { server, url } = await serveFolder(root, mounts);
  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (e) {
    server.close();
    throw e;
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
