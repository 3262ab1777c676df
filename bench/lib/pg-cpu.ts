import fs from 'node:fs';
import { sql, type Kysely } from 'kysely';

/** CPU time (µs) of a database's backends so far, from /proc (the server runs on this machine). */
export async function backendsCpu(db: Kysely<any>): Promise<number> {
  const rows = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`.execute(db);
  let total = 0;
  for (const { pid } of rows.rows) {
    try {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      total += (Number(fields[11]) + Number(fields[12])) * 10_000;
    } catch {
      // ended in between
    }
  }
  return total;
}
