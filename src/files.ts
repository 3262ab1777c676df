import fs from 'node:fs';
import path from 'node:path';

/*
 * The data directory holds the database, the data key, the TLS and VAPID private keys and the
 * admin token's hash: it is made readable by its owner only, and so is every secret file in
 * it. Modes are set with chmod after creating, so they hold whatever the process's umask.
 */

/** Owner only: read, write and enter. */
export const PRIVATE_DIR_MODE = 0o700;
/** Owner only: read and write. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Makes the data directory `0700` when it does not exist yet. An existing directory keeps the
 * mode its operator gave it; the answer says when others may read it, for a warning.
 */
export function makePrivateDir(dir: string): { openToOthers: boolean } {
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    fs.chmodSync(dir, PRIVATE_DIR_MODE);
  }
  return { openToOthers: (fs.statSync(dir).mode & 0o077) !== 0 };
}

/** Writes a file only its owner can read (replacing any file of that name), in a private directory. */
export function writePrivateFile(file: string, content: string | Buffer): void {
  makePrivateDir(path.dirname(file));
  fs.writeFileSync(file, content, { mode: PRIVATE_FILE_MODE });
  fs.chmodSync(file, PRIVATE_FILE_MODE);
}

/**
 * Writes a private file unless one of that name exists, all at once: a process that starts
 * beside this one (a CLI command beside the server) reads either nothing or the whole file.
 * Returns false when the file was already there (its content is then left as it is).
 */
export function createPrivateFile(file: string, content: string | Buffer): boolean {
  makePrivateDir(path.dirname(file));
  const draft = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(draft, content, { mode: PRIVATE_FILE_MODE, flag: 'wx' });
  fs.chmodSync(draft, PRIVATE_FILE_MODE);
  try {
    fs.linkSync(draft, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.unlinkSync(draft);
  }
}
