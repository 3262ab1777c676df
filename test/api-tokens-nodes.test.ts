import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnPostgres, POSTGRES, TEST_DATABASE_URL, TEST_SECRETS } from './helpers/stores.ts';
import { ADMIN_TOKEN, startTestServer, type TestServer } from './helpers/server.ts';
import { openStore, type Store } from '../src/store/db.ts';

describeOnPostgres('scoped API tokens on two nodes sharing one database', () => {
  // Each node has its own connection pool to the same schema, as two processes would.
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const stores: Store[] = [];
  let nodeA: TestServer;
  let nodeB: TestServer;

  beforeAll(async () => {
    for (let i = 0; i < 2; i++)
      stores.push(await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 3, secrets: TEST_SECRETS }));
    nodeA = await startTestServer(POSTGRES!, {}, { store: stores[0] });
    nodeB = await startTestServer(POSTGRES!, {}, { store: stores[1] });
  });
  afterAll(async () => {
    await nodeA?.stop();
    await nodeB?.stop();
    for (const store of stores) await store.close();
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  const users = (node: TestServer, token: string) => fetch(`${node.http}/v1/users`, { headers: { authorization: `Bearer ${token}` } });

  it('a token made on node A works on node B, and is refused there the moment node A revokes it', async () => {
    const made = await fetch(`${nodeA.http}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'billing-backend', scopes: ['users:read'] }),
    });
    expect(made.status).toBe(201);
    const { id, token } = (await made.json()) as { id: string; token: string };
    expect((await users(nodeB, token)).status).toBe(200);

    const revoked = await fetch(`${nodeA.http}/v1/tokens/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(revoked.status).toBe(204);
    const refused = await users(nodeB, token);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: string }).error).toMatch(/revoked/);
  });
});
