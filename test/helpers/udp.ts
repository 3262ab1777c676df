import dgram from 'node:dgram';
import { CounterClock, encodeDatagram, helloPayload, openDatagram, secretBytes, type Datagram } from '../../client/udp-protocol.ts';
import { UdpReceiver, type UdpFrame, type UdpReceiverOptions } from '../../client/udp-receiver.ts';
import type { TestServer, TestUser } from './server.ts';
import { metricsText, waitFor } from './server.ts';

/** What a desktop client learns over HTTPS at login: where to send, and the secret to sign with. */
export interface UdpCredentials {
  endpoint: string;
  station: string;
  secret: string;
}

export async function udpCredentials(user: TestUser): Promise<UdpCredentials> {
  const login = await user.client.login(user.apikey, 'windows');
  const listeners = login.listeners as { udp: string };
  return { endpoint: listeners.udp, station: user.client.station, secret: login.udpsecret as string };
}

/** A started receiver that records every notification it hands on. */
export async function listen(
  user: TestUser,
  options: Partial<UdpReceiverOptions> = {},
): Promise<{ receiver: UdpReceiver; frames: UdpFrame[] }> {
  const receiver = new UdpReceiver({ ...(await udpCredentials(user)), ...options });
  const frames: UdpFrame[] = [];
  receiver.on('notification', (frame: UdpFrame) => frames.push(frame));
  await receiver.start();
  return { receiver, frames };
}

/** One sample of a metric as /metrics shows it (0 when the series does not exist yet). */
export async function metric(server: TestServer, name: string, labels = ''): Promise<number> {
  const text = await metricsText(server);
  const series = labels ? `${name}{${labels}}` : name;
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

export function waitForMetric(server: TestServer, name: string, labels: string, atLeast: number, timeoutMs = 5000) {
  return waitFor(async () => (await metric(server, name, labels)) >= atLeast, timeoutMs, `${name}{${labels}} ≥ ${atLeast}`);
}

/** Whether the server holds a live UDP endpoint for the station. */
export function hasUdpEndpoint(server: TestServer, user: TestUser): boolean {
  const connections = server.app.parts.hub.connectionsOf(user.userid);
  return [...(connections ?? [])].some((c) => c.channel === 'udp' && c.station === user.client.station);
}

/** A bare loopback socket for hand-made datagrams; collects whatever comes back. */
export async function rawSocket(): Promise<{ socket: dgram.Socket; received: Buffer[]; close(): Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (bytes) => received.push(bytes));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { socket, received, close: () => new Promise<void>((resolve) => socket.close(() => resolve())) };
}

export function udpPort(endpoint: string): number {
  return Number(new URL(endpoint).port);
}

/**
 * Binds a bare socket as the station's endpoint the way every client must: a padded hello,
 * the challenge it draws, and a hello echoing the challenge's cookie, which the server
 * welcomes. Returns the echoing hello (to replay) and the two answers.
 */
export async function proveAddress(
  raw: { socket: dgram.Socket; received: Buffer[] },
  credentials: UdpCredentials,
  clock: Pick<CounterClock, 'next'>,
): Promise<{ echo: Buffer; challenge: Datagram; welcome: Datagram }> {
  const key = secretBytes(credentials.secret);
  const { station } = credentials;
  const port = udpPort(credentials.endpoint);
  const answers = raw.received.length;
  raw.socket.send(encodeDatagram(key, { type: 'hello', station, counter: clock.next(), payload: helloPayload() }), port, '127.0.0.1');
  const challenge = openDatagram(key, await waitFor(() => raw.received[answers], 5000, 'the challenge'));
  const echo = encodeDatagram(key, {
    type: 'hello',
    station,
    counter: clock.next(),
    payload: helloPayload(challenge.payload.cookie as string),
  });
  raw.socket.send(echo, port, '127.0.0.1');
  const welcome = openDatagram(key, await waitFor(() => raw.received[answers + 1], 5000, 'the welcome'));
  return { echo, challenge, welcome };
}
