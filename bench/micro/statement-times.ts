/**
 * For the micro-benchmarks: times every better-sqlite3 statement run from the moment
 * timeStatements() is called, grouped by its SQL.
 */
import SQLite from 'better-sqlite3';

const spent = new Map<string, { calls: number; ns: bigint }>();

export function timeStatements(): void {
  const prepare = SQLite.prototype.prepare;
  SQLite.prototype.prepare = function (this: SQLite.Database, source: string) {
    const statement = prepare.call(this, source) as SQLite.Statement;
    const key = source.replace(/\s+/g, ' ').slice(0, 110);
    for (const method of ['run', 'all', 'get'] as const) {
      const original = statement[method].bind(statement) as (...args: unknown[]) => unknown;
      (statement as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        const start = process.hrtime.bigint();
        try {
          return original(...args);
        } finally {
          const entry = spent.get(key) ?? { calls: 0, ns: 0n };
          entry.calls++;
          entry.ns += process.hrtime.bigint() - start;
          spent.set(key, entry);
        }
      };
    }
    return statement;
  } as typeof SQLite.prototype.prepare;
}

export function clearStatementTimes(): void {
  spent.clear();
}

/** Prints the statements by time spent, per `units` (messages, pushes) of the work. */
export function printStatementTimes(units: number, unit: string, limit = Infinity): void {
  for (const [sqlText, { calls, ns }] of [...spent].sort((x, y) => Number(y[1].ns - x[1].ns)).slice(0, limit)) {
    console.log(`${(Number(ns) / units / 1000).toFixed(2).padStart(7)} µs/${unit}  ${String(calls).padStart(6)} calls  ${sqlText}`);
  }
}
