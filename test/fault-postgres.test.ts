import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from './helpers/stores.ts';
import { waitFor } from './helpers/server.ts';
import { CHILD_ADMIN_TOKEN } from './helpers/herald-process.ts';
import { killPrivateServices, startPrivatePostgres, type PrivateService } from './helpers/private-services.ts';
import { feedsOf, killNodes, makeAudience, messagesIn, missingCount, sendMessages, startNode, tally } from './helpers/fault-cluster.ts';

const RECIPIENTS = 5;
const MESSAGES = 30;

if (!TEST_DATABASE_URL) console.warn('HERALD_TEST_DATABASE_URL is unset: the PostgreSQL restart fault test is skipped');

describe.skipIf(!TEST_DATABASE_URL)('PostgreSQL restarted under a node', { timeout: 90_000 }, () => {
  let postgres: PrivateService;

  beforeAll(async () => {
    postgres = await startPrivatePostgres();
  }, 120_000);
  afterAll(async () => {
    await killNodes();
    await postgres?.destroy();
    await killPrivateServices();
  }, 60_000);

  it("answers 503 in each API's shape while it is gone, loses nothing accepted, and recovers by itself", async () => {
    const node = await startNode({ HERALD_DATABASE_URL: postgres.url });
    const audience = await makeAudience([node.http], RECIPIENTS);
    await Promise.all(audience.devices.map((device) => device.connect(node.ws)));
    const before = await sendMessages(audience, MESSAGES);
    expect(before).toEqual({ accepted: MESSAGES, refused: 0 });

    await postgres.stop();
    const ozeki = await audience.senders[0].call('chatconversation', {
      action: 'download',
      conversationid: audience.conversationId,
      instance: '',
    });
    expect(ozeki.httpStatus).toBe(503);
    expect(ozeki.body).toMatchObject({ status: 'ERROR', errormessage: 'the database is unavailable; try again shortly' });
    const rest = await fetch(`${node.http}/v1/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CHILD_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'late@example.org', name: 'Late' }),
    });
    expect(rest.status).toBe(503);
    expect(await rest.json()).toEqual({ error: 'the database is unavailable; try again shortly' });
    const web3mq = await fetch(`${node.http}/api/get_user_info/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ did_type: 'eth', did_value: '0x' + '1'.repeat(40), timestamp: Date.now() }),
    });
    expect(web3mq.status).toBe(503);
    expect(await web3mq.json()).toEqual({ code: 503, msg: 'the database is unavailable; try again shortly' });
    // Sends while it is gone are refused, not accepted and lost.
    const during = await sendMessages(audience, 8);
    expect(during.accepted).toBe(0);

    await postgres.start();
    // Nobody restarts the node: its pool connects anew by itself.
    await waitFor(
      async () =>
        (await audience.senders[0].call('chatconversation', { action: 'download', conversationid: audience.conversationId, instance: '' }))
          .httpStatus === 200,
      20_000,
      'the node to answer again',
    );
    const after = await sendMessages(audience, MESSAGES);
    expect(after).toEqual({ accepted: MESSAGES, refused: 0 });
    expect(node.process.exitCode).toBeNull();

    const feeds = await feedsOf(node.ws, audience.devices, audience.readers);
    for (const feed of feeds.values()) expect(messagesIn(feed)).toBe(before.accepted + after.accepted);
    await waitFor(() => missingCount(feeds) === 0, 20_000, 'every device to get every notification of its feed').catch(() => {});
    const figures = tally(feeds);
    console.log(
      `PostgreSQL restarted: ${before.accepted + after.accepted} messages accepted, ${during.refused} refused while it was gone; ` +
        `expected ${figures.expected}, delivered ${figures.delivered}, lost ${figures.lost}, duplicated ${figures.duplicated}, out of order ${figures.outOfOrder}`,
    );
    for (const device of audience.devices) device.close();
    expect(figures.lost).toBe(0);
    expect(figures.duplicated).toBe(0);
    expect(figures.unknown).toBe(0);
    expect(figures.outOfOrder).toBe(0);
  });
});
