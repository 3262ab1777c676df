import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tracked } from './children.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const HERALD_BIN = path.join(ROOT, 'bin/herald.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `herald …` as a user would, with the given environment on top of this one. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 20_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = tracked(
      spawn(process.execPath, [HERALD_BIN, ...args], {
        env: { ...process.env, HERALD_LOG_LEVEL: 'warn', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`herald ${args.join(' ')} did not finish in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `herald serve` and resolves once it logs that it is listening, with its endpoints. */
export function startServeProcess(env: Record<string, string>, timeoutMs = 20_000) {
  return new Promise<{ child: ChildProcess; endpoints: Record<string, string>; output: () => string }>((resolve, reject) => {
    const child = tracked(
      spawn(process.execPath, [HERALD_BIN, 'serve'], {
        env: { ...process.env, HERALD_LOG_LEVEL: 'info', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`herald serve did not start in ${timeoutMs} ms: ${output}`));
    }, timeoutMs);
    // The JSON log line is looked for in stdout alone: the banner on stderr says "Herald is listening:" too.
    let logged = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      logged += chunk.toString();
      for (const line of logged.split('\n').slice(0, -1)) {
        if (!line.startsWith('{') || !line.includes('Herald is listening')) continue;
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.on('data', (more) => (output += more));
        try {
          resolve({ child, endpoints: (JSON.parse(line) as { endpoints: Record<string, string> }).endpoints, output: () => output });
        } catch (error) {
          // Nobody else holds the child yet: it must not outlive this failure.
          child.kill('SIGKILL');
          reject(new Error(`herald serve logged a line that is not JSON: ${line}`, { cause: error }));
        }
        return;
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk) => (output += chunk));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`herald serve exited with ${code}: ${output}`));
    });
  });
}
