import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { wholeFrame, writeWhole } from '../src/channels/live/ws-frame.ts';
import { waitFor } from './helpers/server.ts';

/** A server and one client on loopback; the client records the text of every frame it reads. */
async function pair(options: { perMessageDeflate: boolean }) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: options.perMessageDeflate });
  await new Promise((resolve) => wss.once('listening', resolve));
  const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, {
    perMessageDeflate: options.perMessageDeflate,
  });
  const texts: string[] = [];
  const binary: boolean[] = [];
  client.on('message', (data, isBinary) => {
    texts.push(data.toString());
    binary.push(isBinary);
  });
  await new Promise((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  const server = await accepted;
  const stop = () => {
    client.terminate();
    wss.close();
  };
  return { server, client, texts, binary, stop };
}

let stops: Array<() => void> = [];
afterEach(() => {
  for (const stop of stops) stop();
  stops = [];
});

describe('whole WebSocket frames', () => {
  it('encodes every length form and multi-byte text the way a ws client reads it', async () => {
    const p = await pair({ perMessageDeflate: false });
    stops.push(p.stop);
    // 125 / 126 bytes and 65,535 / 65,536 bytes are where the length takes 1, 2 and 8 bytes.
    const sent = [
      '',
      'a',
      'x'.repeat(125),
      'x'.repeat(126),
      'é'.repeat(32767) + 'x',
      'y'.repeat(65536),
      '🔔 "Alice"\n\t3 messages',
      'z'.repeat(200_000),
    ];
    expect(Buffer.byteLength(sent[4])).toBe(65535);
    for (const text of sent) {
      const frame = wholeFrame(text);
      expect(frame.bytes.length - frame.payloadAt).toBe(Buffer.byteLength(text));
      writeWhole(p.server, frame);
    }
    await waitFor(() => p.texts.length === sent.length, 5000, 'every frame');
    expect(p.texts).toEqual(sent);
    expect(p.binary.every((b) => b === false)).toBe(true);
  });

  it("keeps its place behind a frame ws is still compressing, and behind ws's own frames", async () => {
    const p = await pair({ perMessageDeflate: true });
    stops.push(p.stop);
    // ws compresses asynchronously and queues what is sent meanwhile; a frame written on the
    // socket directly at that moment would overtake the compressed one.
    const big = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ i, text: 'compressible' })));
    const sequence: string[] = [];
    for (let i = 0; i < 20; i++) {
      p.server.send(big, { compress: true });
      sequence.push(big);
      const text = `{"type":"notification","seq":${i + 1}}`;
      writeWhole(p.server, wholeFrame(text));
      sequence.push(text);
      p.server.send(`{"type":"synced","seq":${i + 1}}`, { compress: false });
      sequence.push(`{"type":"synced","seq":${i + 1}}`);
    }
    await waitFor(() => p.texts.length === sequence.length, 10_000, 'every frame');
    expect(p.texts).toEqual(sequence);
  });

  it('is not written on a connection that is closing', async () => {
    const p = await pair({ perMessageDeflate: false });
    stops.push(p.stop);
    const closed = new Promise<number>((resolve) => p.client.once('close', resolve));
    p.server.close(1001, 'going away');
    const raw = (p.server as unknown as { _socket: Duplex & { bytesWritten: number } })._socket;
    const written = raw.bytesWritten;
    writeWhole(p.server, wholeFrame('{"type":"notification","seq":1}'));
    expect(raw.bytesWritten).toBe(written);
    // A frame after the close frame would be a protocol error on the client's side (1002).
    expect(await closed).toBe(1001);
    expect(p.texts).toEqual([]);
  });
});
