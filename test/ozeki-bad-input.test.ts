import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';
import { ozekiTime } from '../client/ozeki.ts';

describeEachStore('the Ozeki API refuses bad input', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let conversationId: string;

  beforeAll(async () => {
    server = await startTestServer(kind, { HERALD_BODY_LIMIT: '65536' });
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    carol = await addUser(server, 'Carol');
    const created = await alice.client.createConversation([bob.userid]);
    conversationId = (created.conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'first', 'ZGF0YQ==');
  });
  afterAll(async () => server?.stop());

  /** Posts raw text to the API and checks the ERROR shape, the status, and that nothing changed. */
  async function refused(
    api: string,
    body: string,
    expected: { status: number; message: RegExp },
    headers: Record<string, string> = { 'ozeki-station': alice.client.station },
  ) {
    const before = await snapshot(server.app.parts.store);
    const response = await fetch(`${server.http}/?srv=chatserver&api=${api}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    const answer = (await response.json()) as { status: string; errormessage: string };
    expect(answer.status).toBe('ERROR');
    expect(answer.errormessage).toMatch(expected.message);
    expect(response.status).toBe(expected.status);
    expect(await snapshot(server.app.parts.store)).toEqual(before);
  }

  const envelope = (fields: Record<string, unknown>) => JSON.stringify({ clientversioncode: 3, timestamp: ozekiTime(), ...fields });

  it('malformed JSON is refused with 400', async () => {
    await refused('chatconversation', '{"action": "add", ', { status: 400, message: /malformed JSON/ });
  });

  it('a body that is not an object is refused', async () => {
    await refused('chatconversation', '[1,2,3]', { status: 400, message: /JSON object/ });
  });

  it('a missing action is refused', async () => {
    await refused('chatconversation', envelope({ conversationid: conversationId }), { status: 400, message: /action is missing/ });
  });

  it('a wrong-typed field is refused', async () => {
    await refused('chatconversation', envelope({ action: 'add', conversationid: 42, message: '{}' }), {
      status: 400,
      message: /conversationid must be a string/,
    });
  });

  it('a message without its ID is refused and nothing is stored', async () => {
    const message = JSON.stringify({ Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: 'eA==' });
    await refused('chatconversation', envelope({ action: 'add', conversationid: conversationId, message }), {
      status: 400,
      message: /ID is missing/,
    });
  });

  it('a message that is not JSON is refused', async () => {
    await refused('chatconversation', envelope({ action: 'add', conversationid: conversationId, message: 'not json' }), {
      status: 400,
      message: /message must be a JSON string/,
    });
  });

  it('an unknown api is refused with 404', async () => {
    await refused('chatnothing', envelope({ action: 'list' }), { status: 404, message: /unknown api "chatnothing"/ });
  });

  it('an unknown action is refused with 400', async () => {
    await refused('chatconversation', envelope({ action: 'explode', conversationid: conversationId }), {
      status: 400,
      message: /unknown action "explode"/,
    });
  });

  it('a bad timestamp is refused', async () => {
    await refused('chatnotification', JSON.stringify({ action: 'download', clientversioncode: 3, timestamp: '2024-02-31 25:00:00' }), {
      status: 400,
      message: /timestamp must be a UTC time written yyyy-MM-dd HH:mm:ss/,
    });
    await refused('chatnotification', JSON.stringify({ action: 'download', clientversioncode: 3, timestamp: 1709907171 }), {
      status: 400,
      message: /timestamp must be a string/,
    });
  });

  it('an oversized body is refused with 413', async () => {
    const message = JSON.stringify({ ID: 'big', Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: 'x'.repeat(70_000) });
    await refused('chatconversation', envelope({ action: 'add', conversationid: conversationId, message }), {
      status: 413,
      message: /larger than 65536 bytes/,
    });
  });

  it('a missing station is refused with 401', async () => {
    await refused('chatconversation', envelope({ action: 'list' }), { status: 401, message: /Ozeki-Station header is missing/ }, {});
  });

  it('an unknown station is refused with 401', async () => {
    await refused(
      'chatconversation',
      envelope({ action: 'list' }),
      { status: 401, message: /unknown station/ },
      {
        'ozeki-station': newStation(),
      },
    );
  });

  it('a malformed station is refused with 400', async () => {
    await refused(
      'chatconversation',
      envelope({ action: 'list' }),
      { status: 400, message: /32 hexadecimal/ },
      {
        'ozeki-station': 'not-a-station',
      },
    );
  });

  it("logging in on another user's station is refused with 403", async () => {
    await refused(
      'chatlogin',
      envelope({ action: 'login', apikey: bob.apikey }),
      { status: 403, message: /belongs to another user/ },
      {
        'ozeki-station': alice.client.station,
      },
    );
  });

  it('a wrong apikey is refused with 401', async () => {
    await refused(
      'chatlogin',
      envelope({ action: 'login', apikey: 'nope' }),
      { status: 401, message: /apikey is not valid/ },
      {
        'ozeki-station': newStation(),
      },
    );
  });

  it('an Ozeki-User that is not the station owner is refused with 403', async () => {
    await refused(
      'chatconversation',
      envelope({ action: 'list' }),
      { status: 403, message: /Ozeki-User does not match/ },
      {
        'ozeki-station': alice.client.station,
        'ozeki-user': bob.userid,
      },
    );
  });

  it('a wrong Ozeki-Signature is refused with 401', async () => {
    await refused(
      'chatconversation',
      envelope({ action: 'list' }),
      { status: 401, message: /Ozeki-Signature does not match/ },
      {
        'ozeki-station': alice.client.station,
        'ozeki-signature': 'ab'.repeat(32),
      },
    );
  });

  it('a non-participant can neither read nor write the conversation', async () => {
    await refused(
      'chatconversation',
      envelope({ action: 'download', conversationid: conversationId }),
      {
        status: 403,
        message: /not a participant/,
      },
      { 'ozeki-station': carol.client.station },
    );
    const message = JSON.stringify({ ID: 'intruder', Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: 'eA==' });
    await refused(
      'chatconversation',
      envelope({ action: 'add', conversationid: conversationId, message }),
      {
        status: 403,
        message: /not a participant/,
      },
      { 'ozeki-station': carol.client.station },
    );
  });

  it('an unknown conversation is refused with 404', async () => {
    await refused('chatconversation', envelope({ action: 'download', conversationid: 'f'.repeat(32) }), {
      status: 404,
      message: /no such conversation/,
    });
  });

  it('a conversation with an unknown user is refused with 404', async () => {
    await refused('chatconversation', envelope({ action: 'create', participantids: ['0'.repeat(32)] }), {
      status: 404,
      message: /no such user/,
    });
  });
});
