import type { Kysely } from 'kysely';
import type { Bus } from '../cluster/bus.ts';
import type { Notifier } from '../notify/notifier.ts';
import type { Database, DevicesTable } from '../store/schema.ts';
import type { PreferenceView } from '../notify/preferences.ts';
import type { SecretBox } from '../store/secrets.ts';
import { authenticateApiToken, createApiToken, listApiTokens, revokeApiToken, type NewApiToken } from './api-tokens.ts';
import { setAvailability } from './availability.ts';
import { block, blocklist, unblock, type BlockTarget } from './blocks.ts';
import { changesSince } from './changes.ts';
import { createConversation, listConversations, setConversationProperty } from './conversations.ts';
import {
  bindStation,
  deviceOf,
  forgetDevicesBeyondLimit,
  listDevices,
  ownersOf,
  recordLiveProgress,
  registerDevice,
  removeDevice,
  udpSecretOf,
  type DeviceRegistration,
  type LiveProgress,
  type Platform,
} from './devices.ts';
import { addFriendship, listFriends, removeFriendship } from './friends.ts';
import { addMessage, downloadConversation } from './messages.ts';
import { addReport } from './reports.ts';
import { changePreferences, readPreferences, type PreferencesChange } from './preferences.ts';
import { feedPage, markRead, sendNotifications, type GatewaySend, type IdempotentCall, type ReadMark } from './sends.ts';
import { createUser, listUsers, resetApiKey, resolveUser, userByApiKey, type NewUser, type UserListing } from './users.ts';
import { deleteUser } from './user-deletion.ts';

/*
 * The chat layer as the API surfaces see it: each concern bound once, in app.ts, to the
 * node's database, notifier and bus. A surface asks for the few methods it calls (a Pick of
 * these), never for the database itself.
 */

export function users(db: Kysely<Database>, secrets: SecretBox, bus: Pick<Bus, 'publishDisconnect'>) {
  return {
    /** Returns the new user's API key, the only time it is seen. */
    create: (input: NewUser) => createUser(db, secrets, input),
    /** Deletes the user and all that is theirs (a 404 when there is none); their devices' live connections end on every node. */
    delete: (emailOrId: string) => deleteUser(db, bus, emailOrId),
    /** Every user, or a page of them (a search, a limit, the previous page's cursor). */
    list: (listing?: UserListing) => listUsers(db, listing),
    /** By e-mail address or user id; a 404 when there is none. */
    resolve: (emailOrId: string) => resolveUser(db, emailOrId),
    byApiKey: (apikey: string) => userByApiKey(db, secrets, apikey),
    /** A new API key for the user (e-mail or id), returned once; the old one stops working. */
    resetApiKey: (emailOrId: string) => resetApiKey(db, secrets, emailOrId),
  };
}
export type Users = ReturnType<typeof users>;

export function devices(db: Kysely<Database>, secrets: SecretBox, bus: Pick<Bus, 'publishDisconnect'>) {
  return {
    deviceOf: (station: string) => deviceOf(db, station),
    /** Whose each station is, for the stations that are still devices. */
    ownersOf: (stations: readonly string[]) => ownersOf(db, stations),
    /** The device's UDP secret, opened; null when it has none. */
    udpSecretOf: (device: Pick<DevicesTable, 'station' | 'udp_secret_sealed'>) => udpSecretOf(secrets, device),
    list: (userId: string) => listDevices(db, userId),
    /** Binds the station to the user (login), with the device's UDP secret opened. */
    bind: (station: string, userId: string, platform?: Platform) => bindStation(db, secrets, station, userId, platform),
    register: (station: string, userId: string, registration: DeviceRegistration) => registerDevice(db, station, userId, registration),
    /** Forgets the user's oldest devices past the limit, except `keep`; their live connections end on every node. */
    forgetBeyondLimit: (userId: string, keep: string) => forgetDevicesBeyondLimit(db, bus, userId, keep),
    remove: (userId: string, station: string) => removeDevice(db, bus, userId, station),
    /** What live channels learned of many devices (acknowledged and delivered sequences), written in batches. */
    recordLiveProgress: (progress: LiveProgress[]) => recordLiveProgress(db, progress),
  };
}
export type Devices = ReturnType<typeof devices>;

export function friends(db: Kysely<Database>, notifier: Notifier) {
  return {
    list: (userId: string) => listFriends(db, userId),
    add: (a: string, b: string) => addFriendship(db, a, b),
    /** Ends a friendship both ways; a 404 when there was none. */
    remove: (a: string, b: string) => removeFriendship(db, a, b),
    /** Tells the user's friends their new availability. */
    setAvailability: (userId: string, availability: string) => setAvailability(notifier, userId, availability),
  };
}
export type Friends = ReturnType<typeof friends>;

export function blocks(db: Kysely<Database>) {
  return {
    list: (userId: string) => blocklist(db, userId),
    block: (userId: string, target: BlockTarget) => block(db, userId, target),
    unblock: (userId: string, target: BlockTarget) => unblock(db, userId, target),
  };
}
export type Blocks = ReturnType<typeof blocks>;

/** Conversations, their messages and reports: reads from the database, writes through the notifier. */
export function conversations(db: Kysely<Database>, notifier: Notifier) {
  return {
    list: (userId: string) => listConversations(db, userId),
    create: (callerId: string, input: Parameters<typeof createConversation>[2]) => createConversation(notifier, callerId, input),
    setProperty: (...args: DropFirst<Parameters<typeof setConversationProperty>>) => setConversationProperty(notifier, ...args),
    addMessage: (...args: DropFirst<Parameters<typeof addMessage>>) => addMessage(notifier, ...args),
    download: (...args: DropFirst<Parameters<typeof downloadConversation>>) => downloadConversation(db, ...args),
    addReport: (...args: DropFirst<Parameters<typeof addReport>>) => addReport(notifier, ...args),
  };
}
export type Conversations = ReturnType<typeof conversations>;

/** The gateway API's notifications: sent by other backends, paged and read like chat's own. */
export function gateway(db: Kysely<Database>, notifier: Notifier) {
  return {
    send: (send: GatewaySend, idempotent?: IdempotentCall) => sendNotifications(notifier, send, idempotent),
    page: (userId: string, after: number, limit: number) => feedPage(db, userId, after, limit),
    read: (userId: string, mark: ReadMark) => markRead(notifier, userId, mark),
  };
}
export type Gateway = ReturnType<typeof gateway>;

/** The Ozeki change feed: what changed for a user (friends, conversation list) after a time. */
export function changes(db: Kysely<Database>) {
  return { since: (userId: string, since: number) => changesSince(db, userId, since) };
}
export type Changes = ReturnType<typeof changes>;

/** Scoped tokens of the native API: made, listed and revoked by the admin, checked on every call. */
export function apiTokens(db: Kysely<Database>) {
  return {
    create: (input: NewApiToken) => createApiToken(db, input),
    list: () => listApiTokens(db),
    /** A 404 for an unknown id; from now on every node refuses the token. */
    revoke: (id: string) => revokeApiToken(db, id),
    authenticate: (token: string) => authenticateApiToken(db, token),
  };
}
export type ApiTokens = ReturnType<typeof apiTokens>;

/** Users' alert preferences: read from the database; a change reaches every node's view. */
export function preferences(db: Kysely<Database>, view: Pick<PreferenceView, 'reloadUser'>, bus: Pick<Bus, 'publishPreferences'>) {
  return {
    get: (userId: string) => readPreferences(db, userId),
    change: (userId: string, change: PreferencesChange) => changePreferences(db, view, bus, userId, change),
  };
}
export type Preferences = ReturnType<typeof preferences>;

type DropFirst<T extends unknown[]> = T extends [unknown, ...infer Rest] ? Rest : never;
