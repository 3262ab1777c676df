import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { installLeanAsyncBind, leanBind } from '../src/channels/lean-async-bind.ts';

/*
 * The push thread's AsyncResource#bind (src/channels/lean-async-bind.ts) behaves as Node's
 * own, less the deprecated `asyncResource` accessor: node:http2 relies on it to run each
 * request's start in the request's async context.
 */

const nodeBind = AsyncResource.prototype.bind;
afterAll(() => {
  AsyncResource.prototype.bind = nodeBind;
});

describe('the lean AsyncResource bind', () => {
  it('runs the function in the async scope and context the resource was made in', () => {
    const storage = new AsyncLocalStorage<string>();
    const resource = storage.run('request 7', () => new AsyncResource('Test'));
    const bound = leanBind(resource, () => ({ store: storage.getStore(), asyncId: executionAsyncId() }));
    expect(storage.getStore()).toBeUndefined();
    expect(bound()).toEqual({ store: 'request 7', asyncId: resource.asyncId() });
  });

  it("passes the caller's this, or the given thisArg, the arguments and the result, and keeps fn's length", () => {
    const resource = new AsyncResource('Test');
    function three(this: { name: string } | undefined, a: number, b: number, c: number) {
      return `${this?.name}:${a + b + c}`;
    }
    const free = leanBind(resource, three);
    expect(free.call({ name: 'caller' }, 1, 2, 3)).toBe('caller:6');
    const pinned = leanBind(resource, three, { name: 'pinned' });
    expect(pinned.call({ name: 'caller' }, 4, 5, 6)).toBe('pinned:15');
    expect(free.length).toBe(3);
    expect(pinned.length).toBe(3);
  });

  it('refuses what is not a function, as Node does', () => {
    const resource = new AsyncResource('Test');
    expect(() => leanBind(resource, 42 as unknown as () => void)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => nodeBind.call(resource, 42 as unknown as () => void)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('once installed, bind adds no deprecated accessor and the bound function still carries the context', () => {
    const storage = new AsyncLocalStorage<number>();
    const resource = storage.run(3, () => new AsyncResource('Test'));
    const hadAccessor = Object.prototype.hasOwnProperty.call(
      nodeBind.call(resource, () => {}),
      'asyncResource',
    );
    // True exactly when this Node's bind adds the accessor; otherwise nothing is changed.
    expect(installLeanAsyncBind()).toBe(hadAccessor);
    const bound = resource.bind(() => storage.getStore());
    expect(Object.prototype.hasOwnProperty.call(bound, 'asyncResource')).toBe(false);
    expect(bound()).toBe(3);
    // A second call finds nothing left to change.
    expect(installLeanAsyncBind()).toBe(false);
  });
});
