import { afterAll, beforeAll } from 'vitest';
import { POSTGRES, SQLITE, TEST_REDIS_URL } from './stores.ts';
import { startTestServer, type TestServer } from './server.ts';
import { RedisBus } from '../../src/cluster/redis-bus.ts';
import type { Store } from '../../src/store/db.ts';

/**
 * Two nodes in this process on one store (PostgreSQL when the tests have one), joined by the
 * Redis bus at HERALD_TEST_REDIS_URL: started before the describe block's tests, stopped
 * after them. Call it inside a describe block that is skipped when that URL is unset.
 */
export function useRedisNodes(): { readonly a: TestServer; readonly b: TestServer } {
  let store: Store | undefined;
  const nodes: { a?: TestServer; b?: TestServer } = {};
  beforeAll(async () => {
    const kind = POSTGRES ?? SQLITE;
    store = await kind.open();
    const [busA, busB] = [await RedisBus.connect(TEST_REDIS_URL!), await RedisBus.connect(TEST_REDIS_URL!)];
    nodes.a = await startTestServer(kind, {}, { store, bus: busA, spentSignatures: busA });
    nodes.b = await startTestServer(kind, {}, { store, bus: busB, spentSignatures: busB });
  });
  afterAll(async () => {
    await nodes.a?.stop();
    await nodes.b?.stop();
    await store?.close();
  });
  return {
    get a() {
      return nodes.a!;
    },
    get b() {
      return nodes.b!;
    },
  };
}
