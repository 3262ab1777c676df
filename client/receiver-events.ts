import type { ReceiverEvents } from './frames.ts';

type Listener<T> = (value: T) => void;

/** The events of a receiver (Node or browser): on, off, next, and emit for the receiver itself. */
export class ReceiverEventSource {
  private readonly listeners = new Map<keyof ReceiverEvents, Set<Listener<never>>>();

  on<K extends keyof ReceiverEvents>(event: K, listener: Listener<ReceiverEvents[K]>): this {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return this;
  }

  off<K extends keyof ReceiverEvents>(event: K, listener: Listener<ReceiverEvents[K]>): this {
    this.listeners.get(event)?.delete(listener as Listener<never>);
    return this;
  }

  protected emit<K extends keyof ReceiverEvents>(event: K, value: ReceiverEvents[K]): void {
    for (const listener of this.listeners.get(event) ?? []) (listener as Listener<ReceiverEvents[K]>)(value);
  }

  /** Resolves with the next event of a kind that matches, or rejects after `timeoutMs`. */
  next<K extends keyof ReceiverEvents>(
    event: K,
    match: (value: ReceiverEvents[K]) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<ReceiverEvents[K]> {
    return new Promise((resolve, reject) => {
      const listener = (value: ReceiverEvents[K]) => {
        if (!match(value)) return;
        clearTimeout(timer);
        this.off(event, listener);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.off(event, listener);
        reject(new Error(`no matching ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on(event, listener);
    });
  }
}
