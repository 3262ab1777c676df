/**
 * Async iteration over what a receiver hands on: `for await (const n of receiver)`. Each
 * loop gets a stream of its own that starts with the next notification, keeps what arrives
 * while the loop body is busy, and ends when the receiver is closed (or throws when the
 * server refused it). Leaving the loop early (`break`) detaches the stream.
 */
export class NotificationStream<T> implements AsyncIterableIterator<T> {
  private readonly buffered: T[] = [];
  private waiting: { resolve: (result: IteratorResult<T>) => void; reject: (error: Error) => void } | undefined;
  private ended = false;
  private failure: Error | undefined;

  constructor(private readonly detach: (stream: NotificationStream<T>) => void) {}

  /** Hands one item to the loop, or keeps it until the loop asks. */
  push(item: T): void {
    if (this.ended) return;
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting.resolve({ value: item, done: false });
    } else {
      this.buffered.push(item);
    }
  }

  /** No more items: the loop ends after those already kept, or throws `failure` then. */
  end(failure?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = failure;
    this.detach(this);
    const waiting = this.waiting;
    this.waiting = undefined;
    if (!waiting) return;
    if (failure) waiting.reject(failure);
    else waiting.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffered.length > 0) return Promise.resolve({ value: this.buffered.shift()!, done: false });
    if (this.ended) {
      const failure = this.failure;
      this.failure = undefined;
      return failure ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.buffered.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
