// Bundles the web app (/), its service worker (/sw.js) and the console (/console) into
// web/dist with esbuild: one minified ES module per page, named by content hash, beside the
// HTML pages that load them and a manifest the server reads. Run by `npm install` (prepare),
// `npm start` (prestart) and the test suite's global setup; it takes well under a second.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const here = import.meta.dirname;
const out = path.join(here, 'dist');

/** Each page: its entry, its stylesheet and its HTML template (%SCRIPT% and %STYLE% are filled in). */
const PAGES = {
  app: { entry: 'app/main.tsx', style: 'app/app.css', html: 'app/index.html' },
  console: { entry: 'console/main.tsx', style: 'console/console.css', html: 'console/console.html' },
};

/** A page's JavaScript must stay under this many gzipped bytes (issue: 100 KB per page). */
export const GZIP_BUDGET = 100 * 1024;

const hashed = (name, ext, bytes) => `${name}-${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}.${ext}`;

const common = {
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  write: false,
  logLevel: 'silent',
};

export async function build() {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, 'assets'), { recursive: true });
  const manifest = { pages: {}, assets: {} };
  for (const [name, page] of Object.entries(PAGES)) {
    const result = await esbuild.build({ ...common, entryPoints: [path.join(here, page.entry)], outfile: `${name}.js` });
    const js = result.outputFiles[0].contents;
    const css = fs.readFileSync(path.join(here, page.style));
    const jsName = hashed(name, 'js', js);
    const cssName = hashed(name, 'css', css);
    fs.writeFileSync(path.join(out, 'assets', jsName), js);
    fs.writeFileSync(path.join(out, 'assets', cssName), css);
    const html = fs
      .readFileSync(path.join(here, page.html), 'utf8')
      .replace('%SCRIPT%', `/assets/${jsName}`)
      .replace('%STYLE%', `/assets/${cssName}`);
    fs.writeFileSync(path.join(out, `${name}.html`), html);
    manifest.pages[name] = { html: `${name}.html`, script: jsName, style: cssName, scriptGzipBytes: gzipSync(js).length };
    manifest.assets[jsName] = 'text/javascript; charset=utf-8';
    manifest.assets[cssName] = 'text/css; charset=utf-8';
  }
  // The service worker keeps its fixed name: a browser finds it again at /sw.js.
  const sw = await esbuild.build({ ...common, entryPoints: [path.join(here, 'sw/sw.ts')], outfile: 'sw.js' });
  fs.writeFileSync(path.join(out, 'sw.js'), sw.outputFiles[0].contents);
  manifest.serviceWorker = 'sw.js';
  for (const file of fs.readdirSync(path.join(here, 'static'))) {
    fs.copyFileSync(path.join(here, 'static', file), path.join(out, 'assets', file));
    manifest.assets[file] = contentType(file);
  }
  fs.writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  for (const [name, page] of Object.entries(manifest.pages)) {
    if (page.scriptGzipBytes > GZIP_BUDGET) throw new Error(`web/${name}: ${page.scriptGzipBytes} bytes gzipped, over ${GZIP_BUDGET}`);
  }
  return manifest;
}

function contentType(file) {
  const ext = path.extname(file);
  return (
    { '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.webmanifest': 'application/manifest+json' }[ext] ??
    'application/octet-stream'
  );
}

if (process.argv[1] === import.meta.filename) {
  const started = performance.now();
  const manifest = await build();
  const sizes = Object.entries(manifest.pages).map(([name, page]) => `${name} ${(page.scriptGzipBytes / 1024).toFixed(1)} KB gz`);
  process.stdout.write(`web: built in ${Math.round(performance.now() - started)} ms (${sizes.join(', ')})\n`);
}
