#!/usr/bin/env node
// The CLI runs the JavaScript that `npm run build` compiles into dist/ (npm install and
// npm start build it; tsx is only a development tool).
import fs from 'node:fs';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!fs.existsSync(cli)) {
  process.stderr.write('herald: dist/ is missing: run npm run build\n');
  process.exit(1);
}
await import(cli.href);
