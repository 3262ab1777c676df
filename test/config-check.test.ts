import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConfig, ConfigError, FAST_PATH_SWITCHES, KNOWN_NAMES, loadConfig, unknownVariableWarnings } from '../src/config.ts';
import { applyEnvFile, parseEnvFile } from '../src/env-file.ts';
import { ROOT, runCli } from './helpers/cli.ts';

describe('the configuration tells every problem, each naming its variable', () => {
  it('collects every problem instead of stopping at the first; loadConfig throws the first with all of them', () => {
    const env = { HERALD_HTTP_PORT: '99999', HERALD_RATE_LIMITS: 'yes', HERALD_LOG_LEVEL: 'verbose', HERALD_TLS_CERT: '/x.pem' };
    const report = checkConfig(env);
    expect(report.config).toBeUndefined();
    expect(report.problems).toEqual([
      'HERALD_HTTP_PORT must be a port number between 0 and 65535, got "99999"',
      'HERALD_TLS_CERT and HERALD_TLS_KEY must be set together',
      'HERALD_RATE_LIMITS must be 0 or 1, got "yes"',
      'HERALD_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    ]);
    let thrown: unknown;
    try {
      loadConfig(env);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).message).toBe(report.problems[0]);
    expect((thrown as ConfigError).problems).toEqual(report.problems);
  });

  it.each(['HERALD_RATE_LIMITS', 'HERALD_WEBPUSH_ALLOW_PRIVATE', 'HERALD_APNS_SANDBOX', 'HERALD_BANNER', ...FAST_PATH_SWITCHES])(
    'the switch %s takes 0 or 1 and says so for anything else',
    (name) => {
      expect(checkConfig({ [name]: '1' }).problems).toEqual([]);
      expect(checkConfig({ [name]: '0' }).problems).toEqual([]);
      for (const bad of ['yes', 'true', '2']) {
        expect(() => loadConfig({ [name]: bad })).toThrow(new ConfigError(`${name} must be 0 or 1, got "${bad}"`));
      }
    },
  );

  it("takes pino's levels for HERALD_LOG_LEVEL", () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
      expect(loadConfig({ HERALD_LOG_LEVEL: level }).logLevel).toBe(level);
    }
    expect(loadConfig({}).logLevel).toBe('info');
    expect(() => loadConfig({ HERALD_LOG_LEVEL: 'INFO' })).toThrow(/^HERALD_LOG_LEVEL must be one of fatal, error/);
  });

  it('refuses the same port for HTTP and HTTPS', () => {
    expect(() => loadConfig({ HERALD_HTTP_PORT: '9443' })).toThrow('HERALD_HTTP_PORT and HERALD_HTTPS_PORT are both 9443');
    expect(loadConfig({ HERALD_HTTP_PORT: '0', HERALD_HTTPS_PORT: '0' }).httpPort).toBe(0);
  });

  it('warns of HERALD_* names it does not read, with the likely one meant', () => {
    expect(unknownVariableWarnings({ HERALD_HTTP_POTR: '1', HERALD_HOST: '127.0.0.1', PATH: '/bin', HERALD_ZZZZZZZZZZZZ: '1' })).toEqual([
      'HERALD_HTTP_POTR is not a Herald variable and is ignored (did you mean HERALD_HTTP_PORT?)',
      'HERALD_ZZZZZZZZZZZZ is not a Herald variable and is ignored',
    ]);
    expect(
      unknownVariableWarnings({ HERALD_TEST_DATABASE_URL: 'postgres://x', HERALD_LIMIT_LIVE_STATION: 'off', HERALD_NO_CORK: '1' }),
    ).toEqual([]);
  });

  it('knows every HERALD_* name that the sources, tests, benchmarks and client use', () => {
    const names = new Set<string>();
    // These two name unknown variables on purpose.
    const typosOnPurpose = new Set(['config-check.test.ts', 'start-errors.test.ts'].map((name) => path.join(ROOT, 'test', name)));
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (typosOnPurpose.has(file)) continue;
        else if (/\.(ts|js|mjs)$/.test(entry.name)) {
          // A name cut short in the text (`HERALD_APNS_` in a template) is a prefix, not a name.
          for (const [name] of fs.readFileSync(file, 'utf8').matchAll(/HERALD_[A-Z0-9_]*[A-Z0-9]\b(?![`$])/g)) names.add(name);
        }
      }
    };
    for (const dir of ['src', 'test', 'bench', 'client', 'bin']) walk(path.join(ROOT, dir));
    const documented = [...fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').matchAll(/`(HERALD_[A-Z0-9_]*[A-Z0-9])`/g)].map(
      ([, name]) => name,
    );
    const unknown = [...names, ...documented].filter((name) => !KNOWN_NAMES.has(name) && !name.startsWith('HERALD_LIMIT_<'));
    expect(unknown).toEqual([]);
  });
});

describe('a .env file', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-env-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is read as NAME=value lines with comments, export and quotes', () => {
    const text = [
      '# Herald on the test box',
      '',
      'HERALD_HTTP_PORT=8080',
      'export HERALD_HOST = 0.0.0.0   # all interfaces',
      'HERALD_VAPID_SUBJECT="mailto:ops@example.org"',
      "HERALD_ADMIN_TOKEN='a#b\"c'",
      'HERALD_CORS_ORIGINS="https://a.example, https://b.example" # two',
      'MULTI="one\\ntwo \\"quoted\\" \\\\"',
      'EMPTY=',
      'HERALD_HTTP_PORT=8081',
    ].join('\r\n');
    expect(Object.fromEntries(parseEnvFile(text))).toEqual({
      HERALD_HTTP_PORT: '8081',
      HERALD_HOST: '0.0.0.0',
      HERALD_VAPID_SUBJECT: 'mailto:ops@example.org',
      HERALD_ADMIN_TOKEN: 'a#b"c',
      HERALD_CORS_ORIGINS: 'https://a.example, https://b.example',
      MULTI: 'one\ntwo "quoted" \\',
      EMPTY: '',
    });
  });

  it.each([
    ['HERALD_HOST', '.env line 1 is not NAME=value'],
    ['1ABC=x', '.env line 1 is not NAME=value'],
    ['# fine\nHERALD HOST=x', '.env line 2 is not NAME=value'],
    ['HERALD_HOST="127.0.0.1', '.env line 1: the value\'s " quote is not closed'],
    ["HERALD_HOST='a' b", ".env line 1: text after the closing ' quote"],
  ])('refuses %j with the line', (text, message) => {
    expect(() => parseEnvFile(text)).toThrow(ConfigError);
    expect(() => parseEnvFile(text)).toThrow(message);
  });

  it('fills in what the environment lacks; a real variable wins', () => {
    fs.writeFileSync(path.join(dir, '.env'), 'HERALD_HTTP_PORT=8080\nHERALD_HOST=0.0.0.0\n');
    const env: NodeJS.ProcessEnv = { HERALD_HOST: '127.0.0.2' };
    expect(applyEnvFile(env, dir)).toEqual({ file: path.join(dir, '.env'), applied: ['HERALD_HTTP_PORT'] });
    expect(env).toEqual({ HERALD_HOST: '127.0.0.2', HERALD_HTTP_PORT: '8080' });
  });

  it('is optional, unless HERALD_ENV_FILE names one', () => {
    const empty = fs.mkdtempSync(path.join(dir, 'none-'));
    expect(applyEnvFile({}, empty)).toEqual({ applied: [] });
    const missing = path.join(empty, 'herald.env');
    expect(() => applyEnvFile({ HERALD_ENV_FILE: missing }, empty)).toThrow(`HERALD_ENV_FILE ${missing} does not exist`);
    fs.writeFileSync(missing, 'HERALD_UDP_PORT=9999\n');
    const env: NodeJS.ProcessEnv = { HERALD_ENV_FILE: missing };
    applyEnvFile(env, empty);
    expect(env.HERALD_UDP_PORT).toBe('9999');
  });
});

// Each run starts Node and compiles the CLI: seconds apiece on a busy machine.
describe('herald config check', { timeout: 90_000 }, () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-config-check-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The variables a run starts from: none of the test runner's HERALD_* ones. */
  const clean = () =>
    Object.fromEntries(
      Object.keys(process.env)
        .filter((name) => name.startsWith('HERALD_'))
        .map((name) => [name, '']),
    );

  it('prints the effective configuration with secrets hidden, and exits 0 when it is fine', async () => {
    const envFile = path.join(dir, 'fine.env');
    fs.writeFileSync(envFile, 'HERALD_UDP_PORT=9999\n');
    const result = await runCli(['config', 'check'], {
      ...clean(),
      HERALD_DATA_DIR: path.join(dir, 'data'),
      HERALD_HTTP_PORT: '8080',
      HERALD_ADMIN_TOKEN: 'very-secret-admin-token',
      HERALD_DATABASE_URL: 'postgres://herald:db-password@127.0.0.1:5432/herald',
      HERALD_ENV_FILE: envFile,
      HERALD_LOG_LEVEL: '',
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const out = result.stdout;
    expect(out).toMatch(/^ {2}HERALD_HTTP_PORT +8080$/m);
    expect(out).toMatch(/^ {2}HERALD_UDP_PORT +9999 {2}\(from the \.env file\)$/m);
    expect(out).toMatch(/^ {2}HERALD_HTTPS_PORT +\(unset: 9443\)$/m);
    expect(out).toMatch(/^ {2}HERALD_ADMIN_TOKEN +\(set, hidden\)$/m);
    expect(out).toMatch(/^ {2}HERALD_DATABASE_URL +postgres:\/\/herald:\*\*\*\*@127\.0\.0\.1:5432\/herald$/m);
    expect(out).not.toContain('very-secret-admin-token');
    expect(out).not.toContain('db-password');
    expect(out).toContain(`from the environment and ${envFile}`);
    expect(out.trim().split('\n').at(-1)).toBe('No problems: herald serve would start with this configuration.');
    // It opened nothing: not even the data directory was made.
    expect(fs.existsSync(path.join(dir, 'data'))).toBe(false);
  });

  it('lists every problem and warning, and exits 1', async () => {
    const notADir = path.join(dir, 'a-file');
    fs.writeFileSync(notADir, '');
    const result = await runCli(['config', 'check'], {
      ...clean(),
      HERALD_DATA_DIR: notADir,
      HERALD_RATE_LIMITS: 'yes',
      HERALD_LOG_LEVEL: 'verbose',
      HERALD_HTTPS_PORT: 'https',
      HERALD_HTTP_POTR: '8080',
    });
    expect(result.code).toBe(1);
    const out = result.stdout;
    const section = (title: string) => out.split(`${title}:\n`)[1]?.split(/\n(?! )/)[0];
    expect(section('Problems')).toBe(
      [
        '  HERALD_HTTPS_PORT must be a port number between 0 and 65535, got "https"',
        '  HERALD_RATE_LIMITS must be 0 or 1, got "yes"',
        '  HERALD_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
      ].join('\n'),
    );
    expect(section('Warnings')).toBe('  HERALD_HTTP_POTR is not a Herald variable and is ignored (did you mean HERALD_HTTP_PORT?)');
    expect(out.trim().split('\n').at(-1)).toBe('3 problems: herald serve would not start.');
  });

  it('checks the data directory, the files named and the host, without starting', async () => {
    const notADir = path.join(dir, 'plain-file');
    fs.writeFileSync(notADir, '');
    const result = await runCli(['config', 'check'], {
      ...clean(),
      HERALD_DATA_DIR: notADir,
      HERALD_TLS_CERT: path.join(dir, 'missing-cert.pem'),
      HERALD_TLS_KEY: path.join(dir, 'missing-key.pem'),
      HERALD_HOST: 'nosuch.invalid',
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`\n  HERALD_DATA_DIR ${notADir} is not a directory\n`);
    expect(result.stdout).toContain(`\n  HERALD_TLS_CERT ${path.join(dir, 'missing-cert.pem')} does not exist\n`);
    expect(result.stdout).toContain(`\n  HERALD_TLS_KEY ${path.join(dir, 'missing-key.pem')} does not exist\n`);
    expect(result.stdout).toContain('\n  HERALD_HOST nosuch.invalid does not resolve to an address\n');
  });
});
