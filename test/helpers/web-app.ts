import type { BrowserContext, Page, WebSocket as PageWebSocket } from 'playwright-core';
import type { TestUser } from './server.ts';

/**
 * The few browser globals the tests' page functions touch, typed here because the test
 * project has no DOM types. Inside page.evaluate: `const w = globalThis as unknown as PageGlobals`.
 */
export interface PageGlobals {
  localStorage: { getItem(key: string): string | null };
  location: { hash: string };
  document: { title: string };
  navigator: {
    serviceWorker: {
      ready: Promise<{
        active: { state: string } | null;
        getNotifications(): Promise<Array<{ tag: string; title: string; body: string; data: unknown; close(): void }>>;
      }>;
    };
  };
  PushManager: { prototype: { subscribe(): Promise<unknown>; getSubscription(): Promise<unknown> } };
}

/** A subscription as PushSubscription.toJSON() gives it. */
export interface SubscriptionJson {
  endpoint: string;
  expirationTime: null;
  keys: { p256dh: string; auth: string };
}

/**
 * Headless Chromium here has no push service to reach (loopback only), so
 * pushManager.subscribe is replaced in every page of the context by one that answers with
 * this subscription: an endpoint of the Web Push double and keys the test holds
 * (TestBrowser), so Herald's pushes to it can be read.
 */
export async function stubPushSubscribe(context: BrowserContext, subscription: SubscriptionJson): Promise<void> {
  await context.addInitScript((json: SubscriptionJson) => {
    let current: object | null = null;
    const make = () => ({
      endpoint: json.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true },
      getKey: () => null,
      toJSON: () => json,
      unsubscribe: async () => {
        current = null;
        return true;
      },
    });
    const { PushManager } = globalThis as unknown as PageGlobals;
    PushManager.prototype.subscribe = async () => (current ??= make());
    PushManager.prototype.getSubscription = async () => current;
  }, subscription);
}

/** Signs in through the form, as a person would, and waits for the live connection. */
export async function signIn(page: Page, origin: string, user: Pick<TestUser, 'email' | 'apikey'>): Promise<void> {
  await page.goto(origin);
  await page.getByLabel('E-mail').fill(user.email);
  await page.getByLabel('API key').fill(user.apikey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor({ timeout: 10_000 });
}

/** A notification or clean frame the page's WebSocket received. */
export interface SeenFrame {
  type: string;
  seq: number;
  title?: string;
}

/** Records the /ws connections a page opens (their URLs) and the frames they receive. */
export function watchSockets(page: Page): { urls: string[]; frames: SeenFrame[] } {
  const seen = { urls: [] as string[], frames: [] as SeenFrame[] };
  page.on('websocket', (socket: PageWebSocket) => {
    seen.urls.push(socket.url());
    socket.on('framereceived', ({ payload }) => {
      if (typeof payload !== 'string') return;
      const frame = JSON.parse(payload) as SeenFrame;
      if (frame.type === 'notification' || frame.type === 'clean') seen.frames.push(frame);
    });
  });
  return seen;
}

/**
 * The id of the last push the service worker handled to its end, as it keeps it in IndexedDB
 * (`herald` / `kv` / `last-push`). Waiting for it before reading getNotifications() keeps
 * the read out of the worker's way: Chromium may drop a notification that getNotifications()
 * syncs against the displayed ones while it is being shown.
 */
export function lastPushHandled(target: { evaluate<R>(fn: () => Promise<R>): Promise<R> }): Promise<string | null | undefined> {
  return target.evaluate(
    () =>
      new Promise<string | null | undefined>((resolve, reject) => {
        interface Request<T> {
          result: T;
          onsuccess: (() => void) | null;
          onerror: (() => void) | null;
        }
        const { indexedDB } = globalThis as unknown as {
          indexedDB: {
            open(name: string): Request<{
              objectStoreNames: { contains(name: string): boolean };
              transaction(store: string): { objectStore(store: string): { get(key: string): Request<string | null | undefined> } };
              close(): void;
            }>;
          };
        };
        const opened = indexedDB.open('herald');
        opened.onerror = () => reject(new Error('IndexedDB herald cannot be opened'));
        opened.onsuccess = () => {
          const db = opened.result;
          if (!db.objectStoreNames.contains('kv')) return resolve(undefined);
          const read = db.transaction('kv').objectStore('kv').get('last-push');
          read.onsuccess = () => {
            db.close();
            resolve(read.result);
          };
          read.onerror = () => reject(new Error('IndexedDB read failed'));
        };
      }),
  );
}
