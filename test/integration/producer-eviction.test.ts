import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { StreamInput } from '../../src/core/events.js';
import { silentLogger } from '../../src/core/logger.js';
import type { IngestCounters } from '../../src/server/ingest-session.js';
import { ProducerConnection } from '../../src/server/producer-connection.js';
import { StreamDirectory } from '../../src/server/stream-directory.js';
import { SubscriberHub } from '../../src/server/subscriber-hub.js';

/**
 * A producer taken over (another connection resumed its stream with the token) is terminated, but ws still emits
 * the messages it had read off the socket before: those must not reach the stream, which now belongs to the new
 * producer. Real sockets; the late message is delivered the way ws delivers it, as a 'message' event after
 * terminate().
 */

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function producerPair(): Promise<{
  connection: ProducerConnection;
  serverSide: WebSocket;
  client: WebSocket;
  pushed: StreamInput[];
  counters: IngestCounters;
  rejected: string[];
  firstText: Promise<void>;
}> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  closers.push(() => wss.close());
  const pushed: StreamInput[] = [];
  let onPush = () => {};
  const firstText = new Promise<void>((resolve) => (onPush = resolve));
  const counters: IngestCounters = { framesIn: 0, rejected: {} };
  const rejected: string[] = [];
  const directory = new StreamDirectory(new SubscriberHub(), { resumeGraceMs: 0, push: () => {} });
  const accepted = once(wss, 'connection');
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  closers.push(() => client.terminate());
  const [serverSide] = (await accepted) as [WebSocket];
  const connection = new ProducerConnection(
    serverSide,
    { messagesPerSecond: 1000 },
    { helloMs: 10_000, idleMs: 10_000 },
    {
      push: (input) => {
        pushed.push(input);
        if ('modality' in input) onPush();
      },
      directory,
      ready: () => {
        throw new Error('a v1 hello gets no ready');
      },
      counters,
      rejected: (reason) => rejected.push(reason),
      accepted: () => {},
      suppressed: () => {},
      timedOut: () => {},
      log: silentLogger,
    },
  );
  return { connection, serverSide, client, pushed, counters, rejected, firstText };
}

const text = (seq: number) =>
  Buffer.from(JSON.stringify({ type: 'text', time: 1000 * seq, seq, text: 'hi' }));

describe('a producer taken over', () => {
  it('delivers nothing it read before the cut to the stream, and counts it', async () => {
    const { connection, serverSide, client, pushed, counters, rejected, firstText } = await producerPair();
    await once(client, 'open');
    client.send(JSON.stringify({ type: 'hello', version: 1, streamId: 'cam', modalities: ['text'] }));
    client.send(text(0).toString());
    await firstText;
    expect(pushed.filter((i) => 'modality' in i && i.modality === 'text')).toHaveLength(1);
    connection.evicted();
    serverSide.emit('message', text(1), false);
    serverSide.emit('message', text(2), false);
    expect(pushed.filter((i) => 'modality' in i && i.modality === 'text')).toHaveLength(1);
    expect(counters.rejected).toEqual({ taken_over: 2 });
    expect(rejected).toEqual(['taken_over', 'taken_over']);
    expect((await once(client, 'close'))[0]).toBe(1006);
  });
});
