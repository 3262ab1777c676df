import type { Notifier } from '../notify/notifier.ts';
import { badRequest } from '../errors.ts';

/** The states a user can set (`chatavailability` / `user` + state); `offline` is a new user's. */
export const AVAILABILITY_STATES = ['available', 'online', 'away', 'busy', 'donotdisturb', 'offline'] as const;
export type Availability = (typeof AVAILABILITY_STATES)[number];

export function isAvailability(value: string): value is Availability {
  return (AVAILABILITY_STATES as readonly string[]).includes(value);
}

/** Sets a user's availability; friends' devices learn of it as `availability` notifications. */
export async function setAvailability(notifier: Notifier, userId: string, availability: string): Promise<void> {
  if (!isAvailability(availability)) throw badRequest(`availability must be one of ${AVAILABILITY_STATES.join(', ')}`);
  await notifier.transact(async (trx, emit) => {
    const user = await trx.selectFrom('users').select(['name', 'availability']).where('id', '=', userId).executeTakeFirstOrThrow();
    const now = Date.now();
    await trx.updateTable('users').set({ availability, availability_changed_at: now }).where('id', '=', userId).execute();
    if (user.availability === availability) return;
    const friends = await trx.selectFrom('friendships').select('friend_id').where('user_id', '=', userId).execute();
    await emit(
      friends.map((f) => ({
        userId: f.friend_id,
        type: 'availability' as const,
        senderId: userId,
        title: `${user.name} is ${availability}`,
        silent: true,
        data: { userid: userId, availability },
      })),
      { now },
    );
  });
}
