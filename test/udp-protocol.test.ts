import { describe, expect, it } from 'vitest';
import {
  DatagramRefused,
  HELLO_MIN_BYTES,
  ReplayWindow,
  ReturnRoutability,
  encodeDatagram,
  helloPayload,
  openDatagram,
  secretBytes,
} from '../client/udp-protocol.ts';

const SECRET = secretBytes('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
const STATION = '0123456789abcdef0123456789abcdef';
/** The bytes 00 01 … 0f in base64url: a cookie as the server might send it. */
const COOKIE = 'AAECAwQFBgcICQoLDA0ODw';

describe('the UDP datagram format', () => {
  it('matches the test vectors of the README byte for byte', () => {
    const hello = encodeDatagram(SECRET, { type: 'hello', station: STATION, counter: 1700000000000000n, payload: helloPayload() });
    expect(hello.toString('hex')).toBe(
      '4802010123456789abcdef0123456789abcdef00060a24181e40007b22706164223a22303030303030303030303030303030303030303030303030' +
        '30303030303030303030303030303030303030227dd6948b1659ac41a53a65425d321380cb',
    );
    expect(hello).toHaveLength(HELLO_MIN_BYTES);
    const challenge = encodeDatagram(SECRET, {
      type: 'challenge',
      station: STATION,
      counter: 1700000000000100n,
      payload: { cookie: COOKIE },
    });
    expect(challenge.toString('hex')).toBe(
      '4802060123456789abcdef0123456789abcdef00060a24181e40647b22636f6f6b6965223a2241414543417751464267634943516f4c4441304f' +
        '4477227d36df58aa39b87fdaae5bc554460ea4bb',
    );
    expect(challenge.length).toBeLessThanOrEqual(hello.length);
    const echo = encodeDatagram(SECRET, { type: 'hello', station: STATION, counter: 1700000000000001n, payload: helloPayload(COOKIE) });
    expect(echo.toString('hex')).toBe(
      '4802010123456789abcdef0123456789abcdef00060a24181e40017b22636f6f6b6965223a2241414543417751464267634943516f4c4441304f' +
        '4477222c22706164223a22303030303030303030227d3dd87d12411ff5ec8d71d65f4fc247b6',
    );
    expect(echo).toHaveLength(HELLO_MIN_BYTES);
    const ack = encodeDatagram(SECRET, { type: 'ack', station: STATION, counter: 1700000000000002n, payload: { seq: 7 } });
    expect(ack.toString('hex')).toBe(
      '4802030123456789abcdef0123456789abcdef00060a24181e40027b22736571223a377d9e26d9d181bf59e1e77d23e0afba1fc0',
    );
    expect(openDatagram(SECRET, ack)).toEqual({ type: 'ack', station: STATION, counter: 1700000000000002n, payload: { seq: 7 } });
  });

  it('refuses version 1 datagrams, which predate the return-routability cookie', () => {
    const ack = encodeDatagram(SECRET, { type: 'ack', station: STATION, counter: 5n, payload: { seq: 7 } });
    ack[1] = 0x01;
    expect(() => openDatagram(SECRET, ack)).toThrow(DatagramRefused);
  });

  it('accepts a cookie only for the station, address and port it was issued to, for one to two slots', () => {
    const slotMs = 60_000;
    const cookies = new ReturnRoutability(slotMs);
    const issuedAt = 10 * slotMs + 59_000;
    const cookie = cookies.issue(STATION, '127.0.0.1', 5000, issuedAt);
    expect(cookies.verify(cookie, STATION, '127.0.0.1', 5000, issuedAt)).toBe(true);
    expect(cookies.verify(cookie, STATION, '127.0.0.1', 5000, issuedAt + slotMs)).toBe(true);
    expect(cookies.verify(cookie, STATION, '127.0.0.1', 5000, issuedAt + 2 * slotMs)).toBe(false);
    expect(cookies.verify(cookie, STATION, '127.0.0.2', 5000, issuedAt)).toBe(false);
    expect(cookies.verify(cookie, STATION, '127.0.0.1', 5001, issuedAt)).toBe(false);
    expect(cookies.verify(cookie, 'fedcba9876543210fedcba9876543210', '127.0.0.1', 5000, issuedAt)).toBe(false);
    // Another process (a restarted server) has another key.
    expect(new ReturnRoutability(slotMs).verify(cookie, STATION, '127.0.0.1', 5000, issuedAt)).toBe(false);
    for (const junk of [undefined, 42, '', 'not a cookie', cookie.slice(1), 'A'.repeat(1000)]) {
      expect(cookies.verify(junk, STATION, '127.0.0.1', 5000, issuedAt)).toBe(false);
    }
  });

  it('refuses a datagram with any bit changed', () => {
    const ack = encodeDatagram(SECRET, { type: 'ack', station: STATION, counter: 5n, payload: { seq: 7 } });
    for (let i = 0; i < ack.length; i++) {
      const tampered = Buffer.from(ack);
      tampered[i] ^= 0x01;
      expect(() => openDatagram(SECRET, tampered)).toThrow(DatagramRefused);
    }
  });

  it('accepts each counter once, late ones within the window, and nothing older', () => {
    const window = new ReplayWindow();
    expect(window.accept(1000n)).toBe(true);
    expect(window.accept(1000n)).toBe(false);
    expect(window.accept(1002n)).toBe(true);
    expect(window.accept(1001n)).toBe(true);
    expect(window.accept(1001n)).toBe(false);
    expect(window.accept(1002n - 64n)).toBe(false);
    expect(window.accept(1002n - 63n)).toBe(true);
    expect(window.accept(5000n)).toBe(true);
    expect(window.accept(1002n)).toBe(false);
  });
});
