import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`); .ci/run installs it. */
export const CHROMIUM = process.env.HERALD_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const chromiumMissing = !fs.existsSync(CHROMIUM);
if (chromiumMissing) console.warn(`browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

/**
 * Where tests save screenshots: test-results/screenshots (not kept in git), or the directory
 * named by HERALD_TEST_SCREENSHOTS; `HERALD_TEST_SCREENSHOTS=docs/screenshots` refreshes the
 * ones the README shows.
 */
export const SCREENSHOTS = path.resolve(
  process.env.HERALD_TEST_SCREENSHOTS ?? path.join(import.meta.dirname, '../../test-results/screenshots'),
);
fs.mkdirSync(SCREENSHOTS, { recursive: true });

/**
 * A headless Chromium of its own (Playwright gives it a fresh profile; no network beyond loopback), trusting
 * Herald's self-signed certificate through each context. close() ends the process and
 * removes the profile; call it in afterAll / afterEach so a failed test leaves nothing behind.
 */
export async function launchBrowser(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => undefined);
    },
  };
}

/** A context (one "browser profile") that ignores the self-signed certificate and may show notifications. */
export async function newContext(browser: Browser, origin: string): Promise<BrowserContext> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  await context.grantPermissions(['notifications'], { origin });
  return context;
}

/** Collects what a page reports as broken: console errors, uncaught exceptions and CSP violations. */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return problems;
}
