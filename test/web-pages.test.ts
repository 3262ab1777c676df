import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SQLITE } from './helpers/stores.ts';
import { chromiumMissing, launchBrowser, newContext, pageProblems } from './helpers/browser.ts';
import fs from 'node:fs';
import path from 'node:path';
import { webDistDir, type WebManifest } from '../src/api/web.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer(SQLITE);
});
afterAll(async () => {
  await server?.stop();
});

describe('the pages as HTTP answers', () => {
  it('serves the app at / and the console at /console with a strict CSP and no-cache', async () => {
    for (const path of ['/', '/console']) {
      const response = await fetch(`${server.http}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(response.headers.get('cache-control')).toBe('no-cache');
      const csp = response.headers.get('content-security-policy')!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      const html = await response.text();
      // No inline script: every <script> names a file.
      for (const tag of html.match(/<script[^>]*>[\s\S]*?<\/script>/g) ?? [])
        expect(tag).toMatch(/<script[^>]* src="\/assets\/[^"]+"[^>]*><\/script>/);
    }
  });

  it('keeps hashed assets a year, and each page script under 100 KB gzipped', async () => {
    const html = await (await fetch(`${server.http}/`)).text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1];
    const response = await fetch(`${server.http}${script}`, { headers: { 'accept-encoding': 'identity' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toContain('immutable');
    expect(response.headers.get('content-type')).toMatch(/^text\/javascript/);
    const manifest = JSON.parse(fs.readFileSync(path.join(webDistDir(), 'manifest.json'), 'utf8')) as WebManifest;
    for (const page of Object.values(manifest.pages)) expect(page.scriptGzipBytes).toBeLessThanOrEqual(100 * 1024);
  });

  it('serves /sw.js for the whole origin, and the Ozeki API still answers POST /', async () => {
    const worker = await fetch(`${server.http}/sw.js`);
    expect(worker.status).toBe(200);
    expect(worker.headers.get('service-worker-allowed')).toBe('/');
    expect(worker.headers.get('cache-control')).toBe('no-cache');
    const ozeki = await fetch(`${server.http}/?srv=chatserver&api=chatfriends`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(((await ozeki.json()) as { status: string }).status).toBe('ERROR');
    const missing = await fetch(`${server.http}/assets/nothing.js`);
    expect(missing.status).toBe(404);
  });
});

describe.skipIf(chromiumMissing)('the pages in Chromium', () => {
  it('loads / and /console over HTTPS without errors or CSP violations', async () => {
    const { browser, close } = await launchBrowser();
    try {
      const context = await newContext(browser, server.https);
      for (const path of ['/', '/console']) {
        const page = await context.newPage();
        const problems = pageProblems(page);
        await page.goto(`${server.https}${path}`);
        await page.locator('#root *').first().waitFor({ timeout: 10_000 });
        expect(problems).toEqual([]);
      }
    } finally {
      await close();
    }
  });
});
