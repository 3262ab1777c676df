import fs from 'node:fs';
import { sql, type Kysely } from 'kysely';

/** CPU time (µs) of a database's backends so far, from /proc (the server runs on this machine). */
export async function backendsCpu(db: Kysely<any>): Promise<number> {
  let total = 0;
  for (const cpu of (await backendsCpuByPid(db)).values()) total += cpu;
  return total;
}

/**
 * CPU time (µs) of each backend of a database so far (only those of one application_name when
 * given), by process id: two of these taken apart say what the backends alive at the second
 * one spent in between (those that connected in between count from their start).
 */
export async function backendsCpuByPid(db: Kysely<any>, applicationName?: string): Promise<Map<number, number>> {
  const rows = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()
    AND (${applicationName ?? null}::text IS NULL OR application_name = ${applicationName ?? null})`.execute(db);
  const cpu = new Map<number, number>();
  for (const { pid } of rows.rows) {
    try {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      cpu.set(pid, (Number(fields[11]) + Number(fields[12])) * 10_000);
    } catch {
      // ended in between
    }
  }
  return cpu;
}

/** What the backends spent between two readings of backendsCpuByPid. */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let spent = 0;
  for (const [pid, cpu] of after) spent += cpu - (before.get(pid) ?? 0);
  return spent;
}
