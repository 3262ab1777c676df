import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config.ts';
import { ROOT, startServeProcess } from './helpers/cli.ts';

/*
 * Docker is not on these machines, so the container files are checked by reading them:
 * each command they run must be one this tree has (a package.json script, a built file),
 * and the start and health commands are run here as the container would run them.
 */

const run = promisify(execFile);
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** A Dockerfile's instructions by stage: comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const whole = (pending + line).trim();
    pending = '';
    const [, keyword, args] = /^(\w+)\s+(.*)$/s.exec(whole) ?? [];
    if (!keyword) throw new Error(`not an instruction: ${whole}`);
    const instruction = { keyword: keyword.toUpperCase(), args: args.trim() };
    if (instruction.keyword === 'FROM') {
      const [from, as, name] = instruction.args.split(/\s+/);
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      if (stages.length === 0) throw new Error(`${keyword} before FROM`);
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  if (pending) throw new Error('the Dockerfile ends inside a continued line');
  return stages;
}

const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

/** ENV in both forms: `ENV A=1 B="2"` and the old `ENV A 1`. */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const args of all(stage, 'ENV')) {
    if (!args.includes('=')) {
      const [name, ...value] = args.split(/\s+/);
      env[name] = value.join(' ');
      continue;
    }
    for (const match of args.matchAll(/(\w+)=("[^"]*"|\S*)/g)) env[match[1]] = match[2].replace(/^"|"$/g, '');
  }
  return env;
}

/** The environment variable names src/config.ts reads (HERALD_LIMIT_<KIND> as its prefix). */
function configNames(): Set<string> {
  return new Set(read('src/config.ts').match(/HERALD_[A-Z0-9_]+/g));
}

function expectConfigName(name: string, where: string) {
  const names = configNames();
  const known = names.has(name) || [...names].some((prefix) => prefix.endsWith('_') && name.startsWith(prefix));
  expect(known, `${where}: ${name} is not a setting src/config.ts reads`).toBe(true);
}

const dockerfile = parseDockerfile(read('Dockerfile'));
const runtime = dockerfile.at(-1)!;
const scripts = JSON.parse(read('package.json')).scripts as Record<string, string>;
const dependencies = JSON.parse(read('package.json')).dependencies as Record<string, string>;
const cmd = JSON.parse(all(runtime, 'CMD').at(-1)!) as string[];
const healthcheck = all(runtime, 'HEALTHCHECK').at(-1)!;
const healthArgv = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD') + 3).trim()) as string[];

describe('the Dockerfile', () => {
  it('parses into a build stage, a dependencies stage and a slim runtime stage on the same Debian release', () => {
    expect(dockerfile.map((stage) => stage.name)).toEqual(['build', 'deps', undefined]);
    const release = (image: string) => /^node:(\d+)-(\w+)/.exec(image)?.slice(1);
    const [node, debian] = release(runtime.from)!;
    expect(runtime.from).toBe(`node:${node}-${debian}-slim`);
    for (const stage of dockerfile.slice(0, -1)) expect(release(stage.from)).toEqual([node, debian]);
    // The Node the project supports (package.json engines).
    expect(Number(node)).toBe(Number(/\d+/.exec(JSON.parse(read('package.json')).engines.node)![0]));
  });

  it('runs only npm commands this tree has: scripts that exist, a rebuild of a real dependency', () => {
    const commands = dockerfile.flatMap((stage) => all(stage, 'RUN')).flatMap((line) => line.split('&&').map((c) => c.trim()));
    const npm = commands.filter((command) => command.startsWith('npm '));
    expect(npm.length).toBeGreaterThanOrEqual(3);
    for (const command of npm) {
      const [, verb, ...rest] = command.split(/\s+/);
      if (verb === 'run') expect(scripts, command).toHaveProperty(rest[0]);
      else if (verb === 'rebuild') for (const name of rest) expect(dependencies, command).toHaveProperty(name);
      else expect(verb, command).toBe('ci');
    }
    // The runtime's dependencies leave out the dev ones and prepare (it needs TypeScript).
    const deps = dockerfile.find((stage) => stage.name === 'deps')!;
    expect(all(deps, 'RUN').join(' ')).toMatch(/npm ci --omit=dev --ignore-scripts/);
    expect(all(deps, 'RUN').join(' ')).toMatch(/npm rebuild better-sqlite3/);
  });

  it('copies into the runtime image only what exists here or is built: node_modules, dist, web/dist, bin', () => {
    const copies = all(runtime, 'COPY').map((args) => args.split(/\s+/));
    const sources = copies.flatMap((words) => (words[0].startsWith('--from=') ? [] : words.slice(0, -1)));
    for (const source of sources) expect(fs.existsSync(path.join(ROOT, source)), `COPY ${source}`).toBe(true);
    const fromBuild = copies.filter((words) => words[0] === '--from=build').map((words) => words[1]);
    expect(fromBuild).toEqual(['/app/dist', '/app/web/dist']);
    // The build stage's `npm run build` makes both: dist/ with the CLI the CMD runs, and the
    // web pages the server serves (both built before the suite).
    expect(fs.existsSync(path.join(ROOT, 'dist/src/cli.js'))).toBe(true);
    expect(fs.existsSync(path.join(ROOT, 'web/dist/manifest.json'))).toBe(true);
    expect(copies.some((words) => words[0] === '--from=deps' && words[1] === '/app/node_modules')).toBe(true);
  });

  it('runs as a user that is not root, with its data on the /data volume', () => {
    const user = all(runtime, 'USER').at(-1);
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(all(runtime, 'RUN').join(' ')).toContain(`useradd --system --gid ${user}`);
    expect(all(runtime, 'VOLUME')).toEqual(['/data']);
    const env = envOf(runtime);
    expect(env).toMatchObject({ HERALD_DATA_DIR: '/data', HERALD_HOST: '0.0.0.0' });
    for (const name of Object.keys(env).filter((n) => n.startsWith('HERALD_'))) expectConfigName(name, 'Dockerfile ENV');
    const exposed = all(runtime, 'EXPOSE').join(' ').split(/\s+/);
    expect(exposed).toEqual([env.HERALD_HTTP_PORT, env.HERALD_HTTPS_PORT, `${env.HERALD_UDP_PORT}/udp`]);
  });

  describe('its CMD and HEALTHCHECK, run here as the container runs them', () => {
    let dataDir: string;
    let serve: Awaited<ReturnType<typeof startServeProcess>> | undefined;

    beforeAll(async () => {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-docker-'));
      expect(cmd.slice(0, 2)).toEqual(['node', 'bin/herald.js']);
      // startServeProcess runs `node bin/herald.js serve`: the CMD, from the same directory layout.
      expect(cmd.slice(2)).toEqual(['serve']);
      serve = await startServeProcess(
        {
          ...envOf(runtime),
          // On loopback, with ephemeral ports and a data dir of its own, instead of the image's.
          HERALD_DATA_DIR: dataDir,
          HERALD_HOST: '127.0.0.1',
          HERALD_HTTP_PORT: '0',
          HERALD_HTTPS_PORT: '0',
          HERALD_UDP_PORT: '0',
          HERALD_ADMIN_TOKEN: 'docker-test-admin-token',
        },
        60_000,
      );
    }, 90_000);
    afterAll(async () => {
      if (serve && serve.child.exitCode === null) {
        const exited = new Promise((resolve) => serve!.child.once('exit', resolve));
        serve.child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('the health check passes against the running node and fails when nothing answers', async () => {
      expect(healthcheck).toMatch(/--interval=\d+s/);
      expect(healthArgv[0]).toBe('node');
      expect(healthArgv.join(' ')).toContain('/healthz');
      const port = new URL(serve!.endpoints.http).port;
      const check = (httpPort: string) =>
        run(healthArgv[0] === 'node' ? process.execPath : healthArgv[0], healthArgv.slice(1), {
          env: { ...process.env, HERALD_HTTP_PORT: httpPort },
          timeout: 15_000,
        }).then(
          () => 0,
          (error: { code?: number }) => error.code,
        );
      expect(await check(port)).toBe(0);
      // A port nothing listens on: the one the node had, after it stopped.
      const exited = new Promise((resolve) => serve!.child.once('exit', resolve));
      serve!.child.kill('SIGTERM');
      await exited;
      expect(await check(port)).toBe(1);
    }, 60_000);
  });
});

describe('compose.yaml', () => {
  const compose = parseYaml(read('compose.yaml'), { merge: true }) as {
    services: Record<string, Record<string, any>>;
    volumes: Record<string, unknown>;
  };
  const heralds = Object.entries(compose.services).filter(([, service]) => service.build);

  it('runs two Herald nodes built from the Dockerfile, on PostgreSQL and Redis', () => {
    expect(heralds.map(([name]) => name)).toEqual(['herald-1', 'herald-2']);
    expect(compose.services.postgres.image).toMatch(/^postgres:/);
    expect(compose.services.redis.image).toMatch(/^redis:/);
    for (const [name, service] of heralds) {
      expect(service.build, name).toEqual({ context: '.', dockerfile: 'Dockerfile' });
      expect(fs.existsSync(path.join(ROOT, service.build.context, service.build.dockerfile))).toBe(true);
      const { POSTGRES_USER: user, POSTGRES_PASSWORD: password, POSTGRES_DB: db } = compose.services.postgres.environment;
      expect(service.environment.HERALD_DATABASE_URL).toBe(`postgres://${user}:${password}@postgres:5432/${db}`);
      expect(service.environment.HERALD_REDIS_URL).toBe('redis://redis:6379');
      expect(Object.keys(service.depends_on).sort()).toEqual(['postgres', 'redis']);
      for (const variable of Object.keys(service.environment)) expectConfigName(variable, `compose ${name}`);
      // A volume of its own for the data dir the image declares.
      const [volume, mount] = (service.volumes as string[])[0].split(':');
      expect(mount).toBe(envOf(runtime).HERALD_DATA_DIR);
      expect(compose.volumes).toHaveProperty(volume);
    }
  });

  it('gives both nodes the same secrets from one env file, whose example names real settings', () => {
    const files = heralds.map(([, service]) => service.env_file as string[]);
    expect(files[0]).toEqual(files[1]);
    const example = read(`${files[0][0]}.example`);
    const names = [...example.matchAll(/^(HERALD_\w+)=/gm)].map((match) => match[1]);
    expect(names).toEqual(expect.arrayContaining(['HERALD_ADMIN_TOKEN', 'HERALD_SECRET_KEY']));
    for (const name of names) expectConfigName(name, `${files[0][0]}.example`);
    // Copied and not filled in, it stops the nodes with a message naming the key, rather than
    // letting each make a data key of its own that the other cannot read.
    const settings = Object.fromEntries([...example.matchAll(/^(HERALD_\w+)=(.*)$/gm)].map((match) => [match[1], match[2]]));
    expect(() => loadConfig(settings)).toThrow(/HERALD_SECRET_KEY/);
    expect(() => loadConfig({ ...settings, HERALD_SECRET_KEY: randomBytes(32).toString('base64') })).not.toThrow();
    // The real env file holds secrets: never in the image, never committed.
    expect(read('.dockerignore').split('\n')).toContain(files[0][0]);
  });

  it('publishes each node’s own UDP port, the one it listens on', () => {
    const udp = heralds.map(([, service]) => service.environment.HERALD_UDP_PORT as string);
    expect(new Set(udp).size).toBe(2);
    heralds.forEach(([, service], i) => expect(service.ports).toEqual([`${udp[i]}:${udp[i]}/udp`]));
  });

  it('puts one TLS endpoint in front that proxies to both nodes’ HTTP port and checks the health URL', () => {
    const tls = compose.services.tls;
    const caddyfile = (tls.volumes as string[]).map((v) => v.split(':')).find(([, target]) => target === '/etc/caddy/Caddyfile')!;
    expect(caddyfile).toBeDefined();
    const text = read(caddyfile[0].replace(/^\.\//, ''));
    const upstreams = /reverse_proxy\s+([^{]+)\{/.exec(text)![1].trim().split(/\s+/);
    const httpPort = envOf(runtime).HERALD_HTTP_PORT;
    expect(upstreams).toEqual(heralds.map(([name]) => `${name}:${httpPort}`));
    const healthPath = /\/healthz/.exec(healthArgv.join(' '))![0];
    expect(text).toMatch(new RegExp(`health_uri ${healthPath}\\n`));
    expect(tls.ports).toEqual(
      expect.arrayContaining(['443:443', `${envOf(runtime).HERALD_HTTPS_PORT}:${envOf(runtime).HERALD_HTTPS_PORT}`]),
    );
  });
});

describe('the systemd unit', () => {
  const unit: Record<string, string[]> = {};
  for (const line of read('deploy/herald.service').split('\n')) {
    const match = /^(\w+)=(.*)$/.exec(line.trim());
    if (match) (unit[match[1]] ??= []).push(match[2]);
  }

  it('starts the same command as the container, as its own user, with its data in the state directory', () => {
    const execStart = unit.ExecStart[0].split(/\s+/);
    expect(path.basename(execStart[0])).toBe('node');
    expect(execStart.slice(1).map((word, i) => (i === 0 ? path.relative(unit.WorkingDirectory[0], word) : word))).toEqual(cmd.slice(1));
    expect(unit.User).toEqual(['herald']);
    expect(unit.StateDirectory).toEqual(['herald']);
    expect(unit.Environment).toContain('HERALD_DATA_DIR=/var/lib/herald');
    expect(unit.EnvironmentFile).toHaveLength(1);
    for (const setting of unit.Environment.filter((e) => e.startsWith('HERALD_')))
      expectConfigName(setting.split('=')[0], 'herald.service');
  });

  it('is hardened: no new privileges, a read-only system, no capabilities', () => {
    expect(unit).toMatchObject({ NoNewPrivileges: ['yes'], ProtectSystem: ['strict'], ProtectHome: ['yes'], PrivateTmp: ['yes'] });
    expect(unit.CapabilityBoundingSet).toEqual(['']);
  });
});
