import pg from 'pg';

/** A PostgreSQL database made for one bench node, and how to drop it afterwards. */
export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

let made = 0;

/**
 * Creates an empty database on the server of `serverUrl` (named for this process, so two
 * benches at once never share one) and returns its URL; drop() removes it, connections and all.
 */
export async function createBenchDatabase(serverUrl: string): Promise<BenchDatabase> {
  const name = `herald_bench_${process.pid}_${++made}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}
