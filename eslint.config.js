// ESLint for every source folder: the recommended JavaScript and TypeScript rules, no import
// cycles, and the layering of src/ (a folder imports only the folders below it).
import path from 'node:path';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const root = import.meta.dirname;
const src = (...parts) => path.join(root, 'src', ...parts);

// Files at the bottom of src/ that every layer may import; they import no folder of src/.
const LEAVES = ['errors.ts', 'config.ts', 'env-file.ts', 'metrics.ts', 'tls.ts', 'files.ts', 'admin-token.ts'];
const LEAF_GLOB = src(`{${LEAVES.join(',')}}`);

// What each folder of src/ may import besides itself and the leaves, bottom up.
const LAYERS = {
  model: [],
  store: ['model'],
  cluster: ['model'],
  // Rate limits: token buckets per address, station, user and caller (leaves only).
  limits: [],
  notify: ['store', 'cluster', 'model'],
  chat: ['notify', 'store', 'cluster', 'model'],
  channels: ['chat', 'notify', 'store', 'cluster', 'model', 'limits'],
};
const BELOW_API = ['channels', 'chat', 'notify', 'store', 'cluster', 'model', 'limits'];
// Each API surface may use api/http.ts, never another surface.
for (const surface of ['api/ozeki', 'api/rest', 'api/web3mq', 'api/matrix']) LAYERS[surface] = ['api/http.ts', ...BELOW_API];
LAYERS['api/http.ts'] = BELOW_API;
// Around the surfaces, for the whole server: CORS, and the answer to a request no route takes.
LAYERS['api/cors.ts'] = BELOW_API;
LAYERS['api/unmatched.ts'] = ['api/cors.ts', ...BELOW_API];
LAYERS['api/operations.ts'] = ['api/http.ts', ...BELOW_API];
// The web app, its service worker and the console: static pages, no API of their own.
LAYERS['api/web.ts'] = [];
// 429s in each API's error shape, for the whole server.
LAYERS['api/rate-limited.ts'] = ['api/cors.ts', 'api/unmatched.ts', ...BELOW_API];

const layerZones = Object.entries(LAYERS).map(([part, allowed]) => ({
  target: `./src/${part}`,
  from: './src',
  except: [part, ...allowed, ...LEAVES],
  message: `Layering: src/${part} imports only ${[...allowed.map((a) => `src/${a}`), 'the leaf files'].join(', ')}.`,
}));

const compositionZone = {
  // Only cli.ts may import app.ts; nothing under src/ imports cli.ts.
  target: [`${src('*', '**')}`, `${src('!(cli).ts')}`, `${src('*.{js,mjs,cjs}')}`],
  from: [src('app.ts'), src('cli.ts')],
  message: 'Only src/cli.ts imports src/app.ts, and nothing imports src/cli.ts: they compose a node.',
};

const leafZone = {
  target: LEAF_GLOB,
  from: [src('**')],
  except: [LEAF_GLOB],
  message: `The leaf files (${LEAVES.join(', ')}) import nothing from src/ but each other.`,
};

export default defineConfig(
  { ignores: ['node_modules/', '**/dist/', 'data/', '.bench-tmp/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
      globals: { ...globals.node },
    },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.tsx', '.js', '.mjs', '.cjs'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.tsx'] },
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.tsx', '.js', '.mjs', '.cjs', '.json', '.node'] })],
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A cycle of type-only imports is not reported (it is gone at run time); the layer zones
      // below count type imports too.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // Cases that share one answer are listed under each other, with comments between them.
      'no-fallthrough': ['error', { allowEmptyCase: true }],
      '@typescript-eslint/no-explicit-any': ['error', { ignoreRestArgs: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
    },
  },
  {
    files: ['src/**'],
    rules: {
      'import-x/no-restricted-paths': ['error', { basePath: root, zones: [...layerZones, compositionZone, leafZone] }],
    },
  },
  {
    // Migrations see the tables as they were at each step (Kysely<any>, as Kysely advises);
    // tests and benchmarks read raw rows and protocol bodies.
    files: ['src/store/migrations*.ts', 'test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The pages run in a browser (and the worker in a service worker): browser globals, and
    // nothing from the server; they reach it only over HTTP and WebSocket.
    files: ['web/**/*.{ts,tsx}', 'client/browser-receiver.ts'],
    languageOptions: { globals: { ...globals.browser, ...globals.serviceworker } },
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/src/**'], message: 'The web pages talk to the server over HTTP only.' }] },
      ],
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
