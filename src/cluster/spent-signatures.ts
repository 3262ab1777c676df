/**
 * A memory of one-time credentials (Web3MQ signatures) that every node shares. A single
 * node remembers spent signatures itself (api/web3mq/replay.ts), so it needs none; with
 * several nodes Redis keeps it.
 */
export interface SpentSignatures {
  /**
   * Records, for `ttlMs`, that a signature was used, for every node to see: false when it
   * was used before, unless both uses are reads.
   */
  spendEverywhere(key: string, use: 'read' | 'write', ttlMs: number): Promise<boolean>;
}
