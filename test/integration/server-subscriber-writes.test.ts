import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket as ServerSocket, WebSocket, WebSocketServer } from 'ws';
import { type ServerMessage, serverMessageSchema } from '../../src/server/protocol.js';
import { Subscriber } from '../../src/server/subscriber.js';

/**
 * A subscriber's writes: what one turn of the event loop sends (a shard's batch of predictions for many streams)
 * leaves as one write on the upgraded socket, in order, and nothing is held back once the turn ends.
 */

const limits = { maxQueue: 1000, maxBufferedBytes: 1 << 20, stallMs: 5000 };
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A real ws server and client over loopback; resolves with the server's side of the connection and its socket. */
async function connection(): Promise<{ ws: ServerSocket; stream: Duplex; client: WebSocket }> {
  const http: Server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const accepted = new Promise<{ ws: ServerSocket; stream: Duplex }>((resolve) =>
    http.on('upgrade', (req, stream, head) =>
      wss.handleUpgrade(req, stream, head, (ws) => resolve({ ws, stream })),
    ),
  );
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const client = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`);
  const { ws, stream } = await accepted;
  await new Promise((r) => client.once('open', r));
  closers.push(async () => {
    client.terminate();
    ws.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    await new Promise<void>((r) => http.close(() => r()));
  });
  return { ws, stream, client };
}

const prediction = (i: number): ServerMessage => ({
  type: 'prediction',
  streamId: `s${i}`,
  windowIndex: i,
  windowStart: i * 500_000,
  windowEnd: (i + 1) * 500_000,
  scores: { speech: i / 100 },
  present: { audio: true },
  latencyMs: 1,
});

function received(client: WebSocket, n: number): Promise<number[]> {
  const indices: number[] = [];
  return new Promise((resolve) =>
    client.on('message', (data) => {
      indices.push((JSON.parse(String(data)) as { windowIndex: number }).windowIndex);
      if (indices.length === n) resolve(indices);
    }),
  );
}

describe('subscriber writes', () => {
  it('holds one turn’s messages back and writes them together once the turn ends, in order', async () => {
    const { ws, stream, client } = await connection();
    const subscriber = new Subscriber(ws, limits, undefined, undefined, stream);
    const all = received(client, 50);
    for (let i = 0; i < 50; i++) subscriber.send(prediction(i));
    // Still corked in this turn: nothing went to the kernel yet, all 50 frames wait in the socket's buffer.
    expect(stream.writableCorked).toBe(1);
    expect(stream.writableLength).toBeGreaterThan(0);
    await new Promise((r) => process.nextTick(r));
    expect(stream.writableCorked).toBe(0);
    expect(await all).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // The next turn corks again and lets go again.
    const more = received(client, 3);
    subscriber.send(prediction(50));
    expect(stream.writableCorked).toBe(1);
    subscriber.send(prediction(51));
    subscriber.send(prediction(52));
    expect(await more).toEqual([50, 51, 52]);
    expect(stream.writableCorked).toBe(0);
  });

  it('writes at once without the socket under it (a subscriber given only its WebSocket)', async () => {
    const { ws, stream, client } = await connection();
    const subscriber = new Subscriber(ws, limits);
    const all = received(client, 3);
    for (let i = 0; i < 3; i++) subscriber.send(prediction(i));
    expect(stream.writableCorked).toBe(0);
    expect(await all).toEqual([0, 1, 2]);
  });
});

describe('a slow subscriber', () => {
  it('is told what it lost on the next message sent, whatever its kind, in the published schema', async () => {
    const { ws, stream, client } = await connection();
    // Room for one message in the queue, none in the socket while the turn holds its writes back.
    const subscriber = new Subscriber(
      ws,
      { maxQueue: 1, maxBufferedBytes: 1, stallMs: 5000 },
      undefined,
      undefined,
      stream,
    );
    const messages: unknown[] = [];
    const two = new Promise<void>((resolve) =>
      client.on('message', (data) => {
        messages.push(JSON.parse(String(data)));
        if (messages.length === 2) resolve();
      }),
    );
    for (let i = 0; i < 5; i++) subscriber.send(prediction(i));
    subscriber.send({ type: 'stream', event: 'closed', streamId: 's4' });
    await two;
    // Predictions 1–4 were dropped for room; the stream message, next out, says so.
    expect(messages[1]).toEqual({ type: 'stream', event: 'closed', streamId: 's4', dropped: 4 });
    for (const m of messages) expect(serverMessageSchema.safeParse(m).error).toBeUndefined();
  });
});
