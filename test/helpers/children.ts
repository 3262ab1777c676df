import type { ChildProcess } from 'node:child_process';

/*
 * Every process a test starts is tracked here from the moment it is spawned, and killed when
 * the test worker exits, whatever happened: a test that fails or times out before its own
 * clean-up runs leaves nothing behind.
 */

const running = new Map<ChildProcess, { group: boolean }>();

process.once('exit', () => {
  for (const [child, { group }] of running) {
    try {
      if (group && child.pid) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

/**
 * Tracks `child` until it exits; returns it, so a spawn can be wrapped in place. `group`: it
 * was spawned `detached`, and its whole process group goes with it.
 */
export function tracked<T extends ChildProcess>(child: T, options: { group?: boolean } = {}): T {
  running.set(child, { group: options.group ?? false });
  child.once('exit', () => running.delete(child));
  return child;
}
