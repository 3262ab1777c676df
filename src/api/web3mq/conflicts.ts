import { conflict } from '../../errors.ts';

/** SQLite and PostgreSQL report a duplicate key differently. */
function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * Runs a write whose uniqueness was checked first; when a concurrent call won the race the
 * database refuses the duplicate, and the caller gets the same 409 as a sequential repeat.
 */
export async function refuseDuplicates<T>(work: () => Promise<T>, message: string): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(message);
    throw error;
  }
}
