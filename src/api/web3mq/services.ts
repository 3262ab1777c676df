import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';
import type { SecretBox } from '../../store/secrets.ts';
import { authenticateSigned, type SignedCall } from './auth.ts';
import type { Fields } from './fields.ts';
import { readHistory, type HistoryQuery } from './history.ts';
import { login, register, userInfo } from './keys.ts';
import type { ReplayGuard } from './replay.ts';

/*
 * Web3MQ's accounts, signed calls and history bound once, in app.ts, to the node's database
 * and its replay guard (which the live socket at /messages shares): what the plugin is given.
 */
export function web3mqServices(db: Kysely<Database>, secrets: SecretBox, replayGuard: ReplayGuard) {
  return {
    /** Checks a signed call's key, timestamp and signature, and spends the signature. */
    authenticate: (request: FastifyRequest, call: SignedCall) => authenticateSigned(db, replayGuard, request, call),
    userInfo: (fields: Fields) => userInfo(db, fields),
    register: (fields: Fields) => register(db, secrets, replayGuard, fields),
    login: (fields: Fields) => login(db, replayGuard, fields),
    readHistory: (query: HistoryQuery) => readHistory(db, query),
  };
}
export type Web3mqServices = ReturnType<typeof web3mqServices>;
