/**
 * @herald/client: receivers for Herald's live pushes and a typed Ozeki Chat API client.
 * Each part is also an entry of its own (`@herald/client/ws`, `/udp`, `/ozeki`), so a
 * program that uses one does not load the others.
 */
export * from './ws-receiver.ts';
export * from './udp-receiver.ts';
export * from './ozeki.ts';
export { NotificationStream } from './notification-stream.ts';
