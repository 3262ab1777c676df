import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OzekiClient } from '../client/ozeki.ts';
import { ROOT } from './helpers/cli.ts';
import { SQLITE } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';

const run = promisify(execFile);
const CLIENT = path.join(ROOT, 'client');
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

/** Every module specifier a TypeScript file imports or re-exports, static or dynamic. */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\bimport\s+['"]([^'"]+)['"]/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]);
  return found;
}

describe('the client package', () => {
  it('imports nothing outside client/: no ../src, only node: modules, ws and its own files', () => {
    const sources = fs.readdirSync(CLIENT).filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'));
    expect(sources).toContain('index.ts');
    for (const file of sources) {
      for (const specifier of specifiers(fs.readFileSync(path.join(CLIENT, file), 'utf8'))) {
        const allowed = specifier.startsWith('node:') || specifier === 'ws' || /^\.\/[\w-]+\.ts$/.test(specifier);
        expect(allowed, `${file} imports ${specifier}`).toBe(true);
      }
    }
    // The check itself sees an import from the server's sources.
    expect(specifiers(`import { x } from '../src/channels/udp.ts';\nconst y = await import('../src/app.ts');`)).toEqual([
      '../src/channels/udp.ts',
      '../src/app.ts',
    ]);
  });

  describe('built, packed and installed into another project', () => {
    let project: string;
    let server: TestServer;
    let bob: TestUser;

    beforeAll(async () => {
      await run(process.execPath, [TSC, '-p', path.join(CLIENT, 'tsconfig.json')], { cwd: ROOT });
      // What `npm pack` would put in the tarball, without running its scripts again.
      const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: CLIENT });
      const [packed] = JSON.parse(stdout) as Array<{ name: string; files: Array<{ path: string }> }>;
      project = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-client-consumer-'));
      const installed = path.join(project, 'node_modules', ...packed.name.split('/'));
      for (const { path: file } of packed.files) {
        fs.mkdirSync(path.dirname(path.join(installed, file)), { recursive: true });
        fs.copyFileSync(path.join(CLIENT, file), path.join(installed, file));
      }
      // The package's one dependency, and Node's types for the consumer's type check.
      fs.symlinkSync(path.join(ROOT, 'node_modules/ws'), path.join(project, 'node_modules/ws'));
      fs.mkdirSync(path.join(project, 'node_modules/@types'));
      fs.symlinkSync(path.join(ROOT, 'node_modules/@types/node'), path.join(project, 'node_modules/@types/node'));
      fs.symlinkSync(path.join(ROOT, 'node_modules/@types/ws'), path.join(project, 'node_modules/@types/ws'));
      fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
      server = await startTestServer(SQLITE);
      bob = await addUser(server, 'Bob', 'windows');
    }, 120_000);
    afterAll(async () => {
      await server?.stop();
      if (project) fs.rmSync(project, { recursive: true, force: true });
    });

    it('packs only built JavaScript, declarations and the licence', async () => {
      const files = fs.readdirSync(path.join(project, 'node_modules/@herald/client/dist'));
      expect(files).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'ws-receiver.js', 'udp.js', 'ozeki.js', 'ozeki.d.ts']));
      expect(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([]);
      expect(fs.existsSync(path.join(project, 'node_modules/@herald/client/LICENSE'))).toBe(true);
      const manifest = JSON.parse(fs.readFileSync(path.join(CLIENT, 'package.json'), 'utf8'));
      for (const [entry, target] of Object.entries(manifest.exports as Record<string, string | Record<string, string>>)) {
        for (const file of typeof target === 'string' ? [target] : Object.values(target)) {
          expect(fs.existsSync(path.join(project, 'node_modules/@herald/client', file)), `${entry} → ${file}`).toBe(true);
        }
      }
    });

    it('loads through its exports: every entry, in plain Node, with no TypeScript loader', async () => {
      fs.writeFileSync(
        path.join(project, 'entries.mjs'),
        [
          "const entries = ['@herald/client', '@herald/client/ws', '@herald/client/udp', '@herald/client/ozeki', '@herald/client/browser'];",
          'const names = {};',
          'for (const entry of entries) names[entry] = Object.keys(await import(entry)).sort();',
          'console.log(JSON.stringify(names));',
        ].join('\n'),
      );
      const { stdout } = await run(process.execPath, ['entries.mjs'], { cwd: project });
      const names = JSON.parse(stdout) as Record<string, string[]>;
      expect(names['@herald/client']).toEqual(expect.arrayContaining(['WsReceiver', 'UdpReceiver', 'OzekiClient', 'NotificationStream']));
      expect(names['@herald/client/ws']).toContain('WsReceiver');
      expect(names['@herald/client/udp']).toEqual(expect.arrayContaining(['UdpReceiver', 'udpProtocol']));
      expect(names['@herald/client/ozeki']).toEqual(expect.arrayContaining(['OzekiClient', 'ozekiTime']));
      expect(names['@herald/client/browser']).toContain('BrowserReceiver');
      // A path the exports do not name stays private.
      await expect(run(process.execPath, ['-e', "await import('@herald/client/dist/udp-protocol.js')"], { cwd: project })).rejects.toThrow(
        /ERR_PACKAGE_PATH_NOT_EXPORTED/,
      );
    });

    it("type-checks a consumer against the package's declarations", async () => {
      fs.writeFileSync(
        path.join(project, 'consumer.ts'),
        [
          "import { OzekiClient } from '@herald/client/ozeki';",
          "import { WsReceiver, type FeedFrame } from '@herald/client/ws';",
          "import { UdpReceiver } from '@herald/client';",
          "const client = new OzekiClient('https://127.0.0.1:9443', 'ab'.repeat(16), { ca: 'PEM' });",
          "const receiver = new WsReceiver({ url: 'wss://127.0.0.1:9443/ws', station: client.station, ca: 'PEM' });",
          'export async function titles(): Promise<string[]> {',
          '  const seen: string[] = [];',
          '  for await (const frame of receiver) {',
          '    const f: FeedFrame = frame;',
          "    if (f.type === 'notification') seen.push(f.title);",
          '  }',
          '  return seen;',
          '}',
          'export const udp: typeof UdpReceiver = UdpReceiver;',
          // A wrong use must not type-check: the test would notice declarations that say nothing.
          '// @ts-expect-error the station is a string',
          "new OzekiClient('https://127.0.0.1:9443', 42);",
        ].join('\n'),
      );
      const tsconfig = {
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          types: ['node'],
          target: 'ES2022',
          lib: ['ES2023'],
        },
      };
      fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
      const result = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: project }).catch((error) => error);
      expect(`${result.stdout ?? ''}${result.stderr ?? ''}`).toBe('');
    }, 60_000);

    it("logs in over HTTPS to Herald's self-signed certificate with the ca option, from the installed package", async () => {
      fs.writeFileSync(
        path.join(project, 'login.mjs'),
        [
          "import { OzekiClient } from '@herald/client/ozeki';",
          'const { URL: url, CA: ca, STATION: station, APIKEY: apikey } = process.env;',
          "const answer = await new OzekiClient(url, station, { ca }).login(apikey, 'windows');",
          'console.log(JSON.stringify(answer));',
        ].join('\n'),
      );
      const env = { ...process.env, URL: server.https, CA: server.ca, STATION: newStation(), APIKEY: bob.apikey };
      const { stdout } = await run(process.execPath, ['login.mjs'], { cwd: project, env });
      expect(JSON.parse(stdout)).toMatchObject({ status: 'OK', userid: bob.userid });
    });
  });

  it('without the ca option the same HTTPS login is refused as untrusted', async () => {
    const server = await startTestServer(SQLITE);
    try {
      const bob = await addUser(server, 'Bob', 'windows');
      await expect(new OzekiClient(server.https, newStation()).login(bob.apikey)).rejects.toThrow();
      const trusted = await new OzekiClient(server.https, newStation(), { ca: server.ca }).login(bob.apikey);
      expect(trusted.userid).toBe(bob.userid);
    } finally {
      await server.stop();
    }
  });
});
