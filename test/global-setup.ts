import { spawnSync } from 'node:child_process';
import path from 'node:path';

/*
 * Tests import the TypeScript sources, but the processes they start (`herald …`, crash and
 * restart tests) run the compiled dist/, and the server serves the web pages web/build.mjs
 * bundles into web/dist. Bring both up to date once before the suite (scripts/build.mjs does
 * both), so no test runs yesterday's JavaScript and no browser test loads a stale bundle;
 * when nothing changed this is only a look at file times.
 */
export default function buildOnce(): void {
  const root = path.resolve(import.meta.dirname, '..');
  const started = Date.now();
  const result = spawnSync(process.execPath, [path.join(root, 'scripts/build.mjs'), '--if-stale'], { cwd: root, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`the build before the tests failed:\n${result.stdout}${result.stderr}`);
  const tookMs = Date.now() - started;
  if (tookMs > 1000) process.stdout.write(`built dist/ and web/dist/ in ${tookMs} ms\n`);
}
