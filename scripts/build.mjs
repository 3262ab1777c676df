// Builds what `herald` runs: tsc compiles src/ (and the client files the CLI uses) into
// dist/, the worker files that are plain JavaScript are copied beside their callers, and
// the web app is bundled when its build script is there.
//
//   node scripts/build.mjs              build (tsc is incremental: a second run is quick)
//   node scripts/build.mjs --if-stale   build only when a source is newer than the last build
//
// `npm install` runs the first (prepare), `npm start` the second (prestart), so a start
// after `git pull` never runs old JavaScript.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
/** Written last: its time is the time of the last complete build. */
const stamp = path.join(dist, '.built');
/** What the build reads; a file here newer than the stamp makes the build stale. */
const inputs = ['src', 'client', 'web', 'scripts', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];
/** Output and dependency folders inside the inputs, never sources. */
const skipped = new Set(['dist', 'node_modules']);
/** Files of src/ that tsc does not emit but the compiled code loads (worker threads). */
const copiedExtensions = ['.cjs'];

function newestInput() {
  let newest = 0;
  const visit = (file) => {
    let stat;
    try {
      stat = fs.statSync(file);
    } catch {
      return; // an input that is not there (web/ before the web app exists)
    }
    if (stat.isDirectory()) {
      for (const entry of fs.readdirSync(file)) if (!skipped.has(entry)) visit(path.join(file, entry));
    } else {
      newest = Math.max(newest, stat.mtimeMs);
    }
  };
  for (const input of inputs) visit(path.join(root, input));
  return newest;
}

function isStale() {
  // An installation without the sources (a container's runtime stage) has nothing to rebuild.
  if (!fs.existsSync(path.join(root, 'src'))) return false;
  let built;
  try {
    built = fs.statSync(stamp).mtimeMs;
  } catch {
    return true;
  }
  return newestInput() > built;
}

function copyWorkerFiles(from, to) {
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) copyWorkerFiles(source, target);
    else if (copiedExtensions.includes(path.extname(entry.name))) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(source, target);
    }
  }
}

function run(script, args, what) {
  const result = spawnSync(process.execPath, [script, ...args], { cwd: root, stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${what} failed (exit code ${result.status})`);
}

export function build() {
  const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
  if (!fs.existsSync(tsc)) throw new Error('typescript is not installed: run npm install (with the dev dependencies) first');
  run(tsc, ['-p', 'tsconfig.build.json'], 'tsc');
  copyWorkerFiles(path.join(root, 'src'), path.join(dist, 'src'));
  const web = path.join(root, 'web/build.mjs');
  if (fs.existsSync(web)) run(web, [], 'the web build');
  fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

export { isStale };

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  try {
    if (!process.argv.includes('--if-stale') || isStale()) build();
  } catch (error) {
    console.error(`herald build: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
