import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { addUser, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';

describe('the Ozeki API serves only its own actions', () => {
  let server: TestServer;
  let alice: TestUser;

  beforeAll(async () => {
    server = await startTestServer(SQLITE);
    alice = await addUser(server, 'Alice');
  });
  afterAll(async () => server?.stop());

  // Names every JavaScript object answers to: none of them is an action of the API.
  const objectMembers = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];

  it.each(['chatconversation', 'chatblocklist', 'chatfriends'])(
    'an action named after an object member is an unknown action of %s (400)',
    async (api) => {
      for (const action of objectMembers) {
        const { httpStatus, body } = await alice.client.call(api, { action });
        expect({ action, httpStatus, body }).toEqual({
          action,
          httpStatus: 400,
          body: { status: 'ERROR', errormessage: `unknown action "${action}" for ${api}` },
        });
      }
    },
  );

  it('an api named after an object member is an unknown api (404)', async () => {
    for (const api of objectMembers) {
      const { httpStatus, body } = await alice.client.call(api, { action: 'list' });
      expect({ api, httpStatus, status: body.status }).toEqual({ api, httpStatus: 404, status: 'ERROR' });
    }
  });
});
