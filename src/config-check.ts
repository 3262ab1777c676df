import { lookup } from 'node:dns/promises';
import os from 'node:os';
import { checkConfig, checkDataDir, checkNamedFiles, unknownVariableWarnings, type ConfigVariable } from './config.ts';

/*
 * `herald config check`: the configuration `herald serve` would use, every problem that
 * would stop it and every warning, without opening a port or a database.
 */

export interface ConfigCheck {
  /** The text to print. */
  text: string;
  problems: string[];
  warnings: string[];
}

/** Variables whose values are never printed. */
const SECRET = /TOKEN|SECRET|PASSWORD/;

/** The value as it may be printed: secrets hidden, the password of a URL too. */
export function shownValue(name: string, value: string): string {
  if (SECRET.test(name)) return '(set, hidden)';
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    if (!url.password) return value;
    url.password = '****';
    return url.toString();
  } catch {
    return value;
  }
}

/** Whether the host names an address Herald can listen on here. */
async function checkHost(host: string): Promise<string | undefined> {
  if (host === '0.0.0.0' || host === '::' || host === 'localhost') return undefined;
  let addresses: string[];
  try {
    addresses = (await lookup(host, { all: true })).map((entry) => entry.address);
  } catch {
    return `HERALD_HOST ${host} does not resolve to an address`;
  }
  const local = new Set(
    Object.values(os.networkInterfaces())
      .flat()
      .map((entry) => entry?.address),
  );
  const isLocal = (address: string) => local.has(address) || address.startsWith('127.') || address === '::1';
  if (!addresses.some(isLocal)) return `HERALD_HOST ${host} (${addresses.join(', ')}) is not an address of this machine`;
  return undefined;
}

function variableLine(variable: ConfigVariable, fromFile: ReadonlySet<string>, width: number): string {
  const name = variable.name.padEnd(width);
  if (variable.value === undefined) return `  ${name}  ${variable.fallback ? `(unset: ${variable.fallback})` : '(unset)'}`;
  return `  ${name}  ${shownValue(variable.name, variable.value)}${fromFile.has(variable.name) ? '  (from the .env file)' : ''}`;
}

/**
 * Checks the configuration of `env` as `herald serve` would, and the file system and host it
 * names. `envFile`: the .env file read into `env`, and the names it set.
 */
export async function configCheck(env: NodeJS.ProcessEnv, envFile: { file?: string; applied: string[] }): Promise<ConfigCheck> {
  const report = checkConfig(env);
  const problems = [...report.problems];
  const warnings = unknownVariableWarnings(env);
  if (report.config) {
    const { config } = report;
    problems.push(...[checkDataDir(config.dataDir, { make: false }), ...checkNamedFiles(config)].filter((p) => p !== undefined));
    const host = await checkHost(config.host);
    if (host) problems.push(host);
  }

  const width = Math.max(...report.variables.map((variable) => variable.name.length));
  const fromFile = new Set(envFile.applied);
  const lines = [
    `Herald configuration, from the environment${envFile.file ? ` and ${envFile.file}` : ''} (secrets hidden):`,
    ...report.variables.filter((variable) => variable.value !== undefined).map((v) => variableLine(v, fromFile, width)),
    'Defaults in force:',
    ...report.variables.filter((variable) => variable.value === undefined).map((v) => variableLine(v, fromFile, width)),
  ];
  if (problems.length > 0) lines.push('Problems:', ...problems.map((problem) => `  ${problem}`));
  if (warnings.length > 0) lines.push('Warnings:', ...warnings.map((warning) => `  ${warning}`));
  lines.push(
    problems.length === 0
      ? 'No problems: herald serve would start with this configuration.'
      : `${problems.length} ${problems.length === 1 ? 'problem' : 'problems'}: herald serve would not start.`,
  );
  return { text: lines.join('\n') + '\n', problems, warnings };
}
