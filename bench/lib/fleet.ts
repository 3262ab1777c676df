import { Child, sleep } from './ipc.ts';

interface WaitResult {
  received: number;
  expected: number;
  firstAt: number;
  lastAt: number;
  bytes: number;
  otherFrames: number;
  closedEarly: number;
  complete: boolean;
}

/** Receiving devices split over several client processes (bench/clients/receivers.ts). */
export class Fleet {
  private readonly children: Child[];
  private shares: number[] = [];

  constructor(processes: number, name: string) {
    this.children = Array.from({ length: processes }, (_, i) => new Child(`${name}-receivers-${i}`, 'clients/receivers.ts'));
  }

  /** Opens one connection per URL, URLs dealt round-robin to the processes. */
  async connect(kind: 'ws' | 'socketio', urls: string[], localAddresses: string[], timeoutMs = 180_000) {
    const parts: string[][] = this.children.map(() => []);
    urls.forEach((url, i) => parts[i % parts.length].push(url));
    this.shares = parts.map((p) => p.length);
    const results = await Promise.all(
      this.children.map((child, i) =>
        child.request<{ connected: number; failed: number; lastError: string }>(
          'connect',
          { kind, urls: parts[i], localAddresses, concurrency: 100, timeoutMs },
          timeoutMs + 10_000,
        ),
      ),
    );
    const connected = results.reduce((sum, r) => sum + r.connected, 0);
    const failed = results.reduce((sum, r) => sum + r.failed, 0);
    if (failed > 0) throw new Error(`${failed} of ${urls.length} connections failed: ${results.map((r) => r.lastError).join(' ')}`);
    return connected;
  }

  /** Arms every process to expect `perConnection` frames on each of its connections. */
  async arm(perConnection: number): Promise<void> {
    await Promise.all(this.children.map((child, i) => child.request('arm', { count: this.shares[i] * perConnection })));
  }

  async wait(timeoutMs: number) {
    const results = await Promise.all(this.children.map((child) => child.request<WaitResult>('wait', { timeoutMs }, timeoutMs + 10_000)));
    return {
      received: results.reduce((sum, r) => sum + r.received, 0),
      expected: results.reduce((sum, r) => sum + r.expected, 0),
      lastAt: Math.max(...results.map((r) => r.lastAt)),
      bytes: results.reduce((sum, r) => sum + r.bytes, 0),
      closedEarly: results.reduce((sum, r) => sum + r.closedEarly, 0),
      complete: results.every((r) => r.complete),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((child) => child.request('close')));
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((child) => child.stop()));
  }
}

/** Polls until `probe` reaches `target` (connections registered on the server side). */
export async function waitForCount(probe: () => Promise<number>, target: number, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (value < target) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${value} of ${target}`);
    await sleep(50);
    value = await probe();
  }
  return value;
}
