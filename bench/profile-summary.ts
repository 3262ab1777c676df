/**
 * Summarises a .cpuprofile: self time by function and by source file, and the total
 * (self + callees) time of the functions named on the command line. Usage:
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [top=30] [function names…]
 */
import fs from 'node:fs';
import path from 'node:path';
import { ROOT_DIR } from './lib/ipc.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function summarise(file: string, top = 30, focus: string[] = []): string {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = Math.max(0, profile.timeDeltas[i] ?? 0);
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    total += dt;
  });
  const where = (n: ProfileNode) => {
    const url = n.callFrame.url.replace('file://', '');
    const rel = url.startsWith(ROOT_DIR) ? path.relative(ROOT_DIR, url) : url || '(native)';
    return rel.replace(/^node_modules\//, 'nm/');
  };
  const fnSelf = new Map<string, number>();
  const fileSelf = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const key = `${node.callFrame.functionName || '(anonymous)'}  ${where(node)}:${node.callFrame.lineNumber + 1}`;
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + us);
    fileSelf.set(where(node), (fileSelf.get(where(node)) ?? 0) + us);
    // Inclusive time of the focused functions: count each sample once per named ancestor.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const name = byId.get(cur)!.callFrame.functionName;
      if (focus.includes(name) && !seen.has(name)) {
        seen.add(name);
        inclusive.set(name, (inclusive.get(name) ?? 0) + us);
      }
    }
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const lines = [`${file}: ${(total / 1000).toFixed(0)} ms sampled`, '', 'self time by function:'];
  for (const [key, us] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${key}`);
  lines.push('', 'self time by file:');
  for (const [key, us] of [...fileSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${key}`);
  if (focus.length) {
    lines.push('', 'total time (self + callees):');
    for (const name of focus) lines.push(`  ${pct(inclusive.get(name) ?? 0)}  ${name}`);
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const [file, top, ...focus] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [top] [function names…]\n');
    process.exit(2);
  }
  process.stdout.write(summarise(file, Number(top ?? 30), focus) + '\n');
}
