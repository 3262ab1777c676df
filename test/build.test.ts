import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.ts';

const run = promisify(execFile);
const DIST = path.join(ROOT, 'dist');

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(file) : [file];
  });
}

/** The package a bare specifier names: `@scope/name` or `name`, without a subpath. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

describe('the compiled build (dist/)', () => {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-build-'));
  afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));

  it('is up to date after the suite’s global setup: no source is newer than its stamp', async () => {
    const { isStale } = (await import(path.join(ROOT, 'scripts/build.mjs'))) as { isStale: () => boolean };
    expect(isStale()).toBe(false);
  });

  it('holds the CLI, the worker entries and no TypeScript', () => {
    const files = filesUnder(path.join(DIST, 'src')).map((file) => path.relative(DIST, file));
    expect(files).toEqual(
      expect.arrayContaining(['src/cli.js', 'src/app.js', 'src/channels/apns/push-thread-body.js', 'src/store/checkpoint-worker.cjs']),
    );
    expect(files.filter((file) => file.endsWith('.ts'))).toEqual([]);
  });

  it('imports only Node’s modules, the runtime dependencies and its own files: it runs after npm ci --omit=dev', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const runtime = new Set(Object.keys(manifest.dependencies));
    expect(runtime.has('tsx')).toBe(false);
    const builtins = new Set(builtinModules);
    const imported = new Set<string>();
    for (const file of filesUnder(DIST).filter((f) => /\.(c|m)?js$/.test(f))) {
      const text = fs.readFileSync(file, 'utf8');
      const patterns = [/\bfrom\s*["']([^"']+)["']/g, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g, /\brequire\(\s*["']([^"']+)["']\s*\)/g];
      for (const pattern of patterns) {
        for (const [, specifier] of text.matchAll(pattern)) {
          if (specifier.startsWith('.')) {
            expect(specifier, `${path.relative(ROOT, file)} imports ${specifier}`).not.toMatch(/\.ts$/);
            expect(fs.existsSync(path.resolve(path.dirname(file), specifier)), `${path.relative(ROOT, file)} → ${specifier}`).toBe(true);
          } else if (!specifier.startsWith('node:') && !builtins.has(specifier)) {
            imported.add(packageOf(specifier));
          }
        }
      }
    }
    expect(imported.size).toBeGreaterThan(5);
    for (const name of imported) expect(runtime.has(name), `dist imports ${name}, which is not a runtime dependency`).toBe(true);
  });

  it('bin/herald.js without dist/ says in one line to build, and exits 1', async () => {
    fs.mkdirSync(path.join(temp, 'bin'));
    fs.copyFileSync(path.join(ROOT, 'bin/herald.js'), path.join(temp, 'bin/herald.js'));
    fs.writeFileSync(path.join(temp, 'package.json'), JSON.stringify({ type: 'module' }));
    const failed = await run(process.execPath, [path.join(temp, 'bin/herald.js'), '--help']).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toBe('herald: dist/ is missing: run npm run build\n');
  });

  it('herald --help runs from dist/ with no TypeScript loader', async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin/herald.js'), '--help'], {
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect(stdout).toMatch(/^Usage: herald/);
  });
});
