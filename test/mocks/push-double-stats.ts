import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A plain HTTP endpoint on loopback beside a push double run as a process (benchmarks):
 * GET /stats answers `stats()` as JSON, other GET paths go to `extra` (null: 404).
 */
export async function serveDoubleStats(
  stats: () => unknown,
  extra: (path: URL) => unknown = () => null,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const value = url.pathname === '/stats' ? stats() : extra(url);
    if (value === null) return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** CPU time (user + system) of this process so far, in microseconds: how busy the double was. */
export function cpuMicros(): number {
  const cpu = process.cpuUsage();
  return cpu.user + cpu.system;
}
