/**
 * Micro-benchmark (not part of `npm run bench`): what users' alert preferences cost the hot
 * path, on a message to a group of 2,000 through the real `addMessage` path, on SQLite.
 * Modes, taken in turns so that the growing feeds weigh on each alike:
 * - `none`: a notifier without preferences (what every append cost before them);
 * - `empty`: the preference view loaded, nobody in the group has any;
 * - `tenth`: a tenth of the group has quiet hours (holding now), do-not-disturb or a mute.
 * Usage: node --import tsx bench/micro/preferences-append.ts   (MODES=none to run only that,
 * also on a tree without preferences; GROUP, MESSAGES to change the sizes)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../../src/store/db.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createUser } from '../../src/chat/users.ts';
import { createConversation } from '../../src/chat/conversations.ts';
import { addMessage } from '../../src/chat/messages.ts';

const GROUP = Number(process.env.GROUP ?? 2000);
const MESSAGES = Number(process.env.MESSAGES ?? 60);
const MODES = (process.env.MODES ?? 'none,empty,tenth').split(',');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-prefs-'));
const store = await openStore({ sqliteFile: path.join(dir, 'herald.db') });
const members: string[] = [];
for (let i = 0; i < GROUP; i++)
  members.push((await createUser(store.db, store.secrets, { email: `g${i}@example.org`, name: `G${i}` })).userid);
const plain = new Notifier(store, new LocalBus());
const conversation = await createConversation(plain, members[0], { participantIds: members.slice(1) });
const sender = { id: members[0], name: 'G0' };

const notifiers: Record<string, Notifier> = { none: plain };
if (MODES.some((m) => m !== 'none')) {
  // Loaded only here, so that MODES=none also runs on a tree from before preferences.
  const { PreferenceView } = await import('../../src/notify/preferences.ts');
  const { changePreferences } = await import('../../src/chat/preferences.ts');
  const bus = new LocalBus();
  const empty = await PreferenceView.load(store.db, { refreshMs: 0 });
  notifiers.empty = new Notifier(store, bus, undefined, empty);
  const tenth = await PreferenceView.load(store.db, { refreshMs: 0 });
  const noReload = { reloadUser: async () => {} };
  for (let i = 1; i < GROUP; i += 10) {
    // A third each: quiet around the clock (00:00–23:59) in one of several zones, do-not-disturb, a mute.
    const zone = ['Europe/Budapest', 'Asia/Tokyo', 'America/New_York'][i % 3];
    const change =
      i % 30 === 1
        ? { dndUntil: Date.now() + 3_600_000 }
        : i % 30 === 11
          ? { conversationMutes: { [conversation.id]: Date.now() + 3_600_000 } }
          : {
              quietHours: {
                start: '00:00',
                end: '23:59',
                timeZone: zone,
                days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const,
              },
            };
    await changePreferences(store.db, noReload, bus, members[i], change as never);
  }
  await tenth.reload();
  notifiers.tenth = new Notifier(store, bus, undefined, tenth);
  console.log(`view: ${tenth.size} of ${GROUP} users with preferences in force`);
  // The look-ups alone, as appendNotifications makes them: one per recipient.
  for (const [name, view] of [
    ['empty', empty],
    ['tenth', tenth],
  ] as const) {
    const rounds = 500;
    const now = Date.now();
    const started = process.hrtime.bigint();
    let silent = 0;
    for (let r = 0; r < rounds; r++) for (const member of members) if (view.silences(member, conversation.id, now)) silent++;
    const perMessage = Number(process.hrtime.bigint() - started) / rounds / 1e6;
    console.log(`${name.padEnd(6)} look-ups alone: ${perMessage.toFixed(3)} ms a ${GROUP}-recipient message (${silent / rounds} silent)`);
  }
}

const times: Record<string, number[]> = Object.fromEntries(MODES.map((m) => [m, []]));
for (let i = 0; i < MESSAGES + 3; i++) {
  for (const mode of MODES) {
    const started = process.hrtime.bigint();
    await addMessage(notifiers[mode], sender, conversation.id, {
      ID: `${mode}-${i}`,
      Type: 'Message',
      Created: '',
      ValidUntil: '',
      Data: 'aGk=',
    });
    // The first three rounds warm up.
    if (i >= 3) times[mode].push(Number(process.hrtime.bigint() - started) / 1e6);
  }
}
for (const mode of MODES) {
  const sorted = times[mode].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(
    `${mode.padEnd(6)} ${GROUP} recipients: median ${median.toFixed(2)} ms a message, ${((median * 1000) / GROUP).toFixed(2)} µs a recipient (${sorted.length} messages)`,
  );
}
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
