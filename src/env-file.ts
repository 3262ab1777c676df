import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './config.ts';

/*
 * An optional `.env` file: `NAME=value` lines, read before the configuration. A variable
 * set in the real environment wins over the file, so one run can override a line of it.
 */

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The variables of a .env text, in order (a name given twice keeps its last value). Lines
 * are `NAME=value`, optionally after `export `; blank lines and lines starting with `#` are
 * skipped. A value may be in double quotes (with `\n`, `\"` and `\\`) or single quotes (taken
 * as written); an unquoted value ends at ` #` and is trimmed.
 */
export function parseEnvFile(text: string, file = '.env'): Map<string, string> {
  const variables = new Map<string, string>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const where = `${file} line ${index + 1}`;
    const equals = trimmed.indexOf('=');
    const name =
      equals < 0
        ? ''
        : trimmed
            .slice(0, equals)
            .replace(/^export\s+/, '')
            .trim();
    if (!NAME.test(name)) {
      throw new ConfigError(`${where} is not NAME=value (a name is letters, digits and _, not starting with a digit)`);
    }
    variables.set(name, envValue(trimmed.slice(equals + 1).trim(), where));
  });
  return variables;
}

function envValue(text: string, where: string): string {
  const quote = text[0];
  if (quote !== '"' && quote !== "'") return text.replace(/\s+#.*$/, '');
  const end = closingQuote(text, quote);
  if (end < 0) throw new ConfigError(`${where}: the value's ${quote} quote is not closed`);
  const rest = text.slice(end + 1).trim();
  if (rest !== '' && !rest.startsWith('#')) throw new ConfigError(`${where}: text after the closing ${quote} quote`);
  const inner = text.slice(1, end);
  if (quote === "'") return inner;
  return inner.replace(/\\([n"\\])/g, (_, escaped: string) => (escaped === 'n' ? '\n' : escaped));
}

/** Where a quoted value ends: the next unescaped quote (single quotes know no escapes). */
function closingQuote(text: string, quote: string): number {
  for (let i = 1; i < text.length; i++) {
    if (quote === '"' && text[i] === '\\') i++;
    else if (text[i] === quote) return i;
  }
  return -1;
}

export interface EnvFileResult {
  /** The file read, or undefined when there is none. */
  file?: string;
  /** The names it set (those not already in the environment). */
  applied: string[];
}

/**
 * Reads HERALD_ENV_FILE, or `.env` in `cwd` when there is one, into `env` for every name the
 * environment does not already have. A HERALD_ENV_FILE that cannot be read is an error.
 */
export function applyEnvFile(env: NodeJS.ProcessEnv, cwd = process.cwd()): EnvFileResult {
  const named = env.HERALD_ENV_FILE;
  const file = named ? path.resolve(cwd, named) : path.join(cwd, '.env');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!named && code === 'ENOENT') return { applied: [] };
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
    throw new ConfigError(`${named ? `HERALD_ENV_FILE ${file}` : file} ${why}`);
  }
  const applied: string[] = [];
  for (const [name, value] of parseEnvFile(text, file)) {
    if (env[name] !== undefined) continue;
    env[name] = value;
    applied.push(name);
  }
  return { file, applied };
}
