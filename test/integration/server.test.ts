import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeFrame } from '../../src/server/protocol.js';
import { type BraidServer, type ServerOptions, startServer } from '../../src/server/server.js';
import { countingPipeline } from '../helpers/counting-pipeline.js';
import { connect as connectTo, inbox, openSockets, roundTrip } from '../helpers/ws-client.js';

const servers: BraidServer[] = [];
afterEach(async () => {
  for (const s of openSockets.splice(0)) s.terminate();
  for (const s of servers.splice(0)) await s.close();
});

async function serve(options: Partial<ServerOptions> = {}): Promise<BraidServer> {
  const server = await startServer({ pipeline: countingPipeline(), port: 0, ...options });
  servers.push(server);
  return server;
}

const connect = (server: BraidServer, path: string, init?: WebSocket.ClientOptions) =>
  connectTo(server.url, path, init);

const hello = (streamId: string, extra: object = {}) =>
  JSON.stringify({
    type: 'hello',
    version: 1,
    streamId,
    modalities: ['audio', 'video', 'text'],
    audio: { sampleRate: 16000, format: 'pcm16' },
    video: { format: 'gray', width: 4, height: 3 },
    ...extra,
  });
const audioFrame = (time: number, seq: number) =>
  encodeFrame({ modality: 'audio', time, seq, payload: new Uint8Array(new Int16Array(160).buffer) });
const videoFrame = (time: number, seq: number, bytes = 12) =>
  encodeFrame({ modality: 'video', time, seq, payload: new Uint8Array(bytes) });

describe('server: ingest and subscribe', () => {
  it('streams predictions for a producer to a subscriber, and closes the stream when the producer leaves', async () => {
    const server = await serve();
    const sub = await connect(server, '/subscribe');
    const box = inbox(sub);
    await box.next((m) => m.type === 'welcome');
    sub.send(JSON.stringify({ subscribe: ['cam-1'] }));
    // Subscribers of other streams, or of none yet, hear nothing of cam-1 (not even that it opened).
    const others = await Promise.all(
      [['cam-2'], undefined].map(async (streams) => {
        const ws = await connect(server, '/subscribe');
        const messages = inbox(ws);
        await messages.next((m) => m.type === 'welcome');
        if (streams) {
          ws.send(JSON.stringify({ subscribe: streams }));
          await messages.next((m) => m.type === 'subscribed');
        }
        return { ws, messages, streams };
      }),
    );
    const prod = await connect(server, '/ingest');
    const prodBox = inbox(prod);
    prod.send(hello('cam-1'));
    await box.next((m) => m.type === 'stream' && m.event === 'opened' && m.streamId === 'cam-1');
    for (let i = 0; i < 30; i++) {
      prod.send(audioFrame(i * 10_000, i));
      if (i % 7 === 0) prod.send(videoFrame(i * 10_000, i));
    }
    prod.send(JSON.stringify({ type: 'text', time: 55_000, seq: 0, text: 'hello' }));
    prod.send(JSON.stringify({ type: 'text', time: 250_000, seq: 1, text: 'again' }));
    const first = await box.next((m) => m.type === 'prediction');
    expect(first).toMatchObject({ streamId: 'cam-1', windowIndex: 0, windowStart: 0, windowEnd: 100_000 });
    expect((first as { present: Record<string, boolean> }).present).toMatchObject({
      audio: true,
      video: true,
      text: true,
    });
    prod.close();
    const closed = await box.next((m) => m.type === 'stream' && m.event === 'closed');
    // The producer's close flushed the last open window, and `closed` came after its prediction.
    const last = box.messages.findIndex((m) => m.type === 'prediction' && m.windowIndex === 2);
    expect(last).toBeGreaterThan(-1);
    expect(last).toBeLessThan(box.messages.indexOf(closed));
    expect(prodBox.messages.filter((m) => m.type === 'error')).toEqual([]);
    expect(server.activeStreams()).toEqual([]);
    for (const { ws, messages, streams } of others) {
      // The answer comes after anything the server sent this subscriber before it.
      ws.send(JSON.stringify({ subscribe: streams ?? ['cam-3'] }));
      await messages.next(
        () => messages.messages.filter((m) => m.type === 'subscribed').length === (streams ? 2 : 1),
      );
      expect(messages.messages.filter((m) => m.type !== 'welcome' && m.type !== 'subscribed')).toEqual([]);
    }
  });

  it('answers malformed input with an error naming the problem, counts it, and keeps other streams going', async () => {
    const server = await serve();
    const bad = await connect(server, '/ingest');
    const badBox = inbox(bad);
    bad.send(audioFrame(0, 0));
    expect(await badBox.next((m) => m.type === 'error')).toMatchObject({ code: 'no_hello' });
    bad.send('{not json');
    expect(await badBox.next((m) => m.type === 'error' && m.code === 'bad_json')).toBeTruthy();
    bad.send(JSON.stringify({ type: 'hello', version: 1, streamId: 'x', modalities: ['audio'] }));
    const helloError = await badBox.next((m) => m.type === 'error' && m.code === 'bad_hello');
    expect((helloError as { message: string }).message).toMatch(/audio/);
    bad.send(hello('x'));
    bad.send(videoFrame(0, 0, 11));
    expect(await badBox.next((m) => m.type === 'error' && m.code === 'bad_video_size')).toBeTruthy();
    bad.send(encodeFrame({ modality: 'audio', time: 0, seq: 0, payload: new Uint8Array(3) }));
    expect(await badBox.next((m) => m.type === 'error' && m.code === 'odd_pcm_bytes')).toBeTruthy();
    bad.send(encodeFrame({ modality: 'audio', time: 0, seq: 0, payload: new Uint8Array(0) }));
    expect(await badBox.next((m) => m.type === 'error' && m.code === 'empty_audio')).toMatchObject({
      message: 'audio frame holds no samples',
    });
    bad.send(new Uint8Array([1, 9, 0, 0]));
    expect(await badBox.next((m) => m.type === 'error' && m.code === 'short_frame')).toBeTruthy();
    bad.send(JSON.stringify({ type: 'label', time: 0, seq: 0, labels: { a: 1 } }));
    expect(await badBox.next((m) => m.type === 'error' && m.code === 'undeclared_modality')).toBeTruthy();

    const other = await connect(server, '/ingest');
    const otherBox = inbox(other);
    other.send(hello('x'));
    expect(await otherBox.next((m) => m.type === 'error')).toMatchObject({ code: 'stream_in_use' });

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/braid_ingest_rejected_total\{reason="no_hello"\} 1/);
    expect(metrics).toMatch(/braid_ingest_rejected_total\{reason="stream_in_use"\} 1/);
    expect(metrics).toMatch(/braid_ingest_rejected_total\{reason="empty_audio"\} 1/);
    expect(await (await fetch(`${server.url}/healthz`)).json()).toMatchObject({ status: 'ok' });
  });

  it('closes windows at a bounded frame’s end with no progress message, and refuses frames with unknown flags', async () => {
    const server = await serve();
    const sub = await connect(server, '/subscribe');
    const box = inbox(sub);
    await box.next((m) => m.type === 'welcome');
    sub.send(JSON.stringify({ subscribe: ['mic'] }));
    await box.next((m) => m.type === 'subscribed');
    const prod = await connect(server, '/ingest');
    const prodBox = inbox(prod);
    prod.send(hello('mic', { modalities: ['audio'] }));
    // 90 ms of audio in 10 ms frames: without a bound, window [0, 100 ms) waits for a later event or progress.
    for (let i = 0; i < 9; i++) prod.send(audioFrame(i * 10_000, i));
    // The tenth frame ends at 100 ms and says so: the window closes on it, the producer still open.
    const bounded = encodeFrame({
      modality: 'audio',
      time: 90_000,
      seq: 9,
      payload: new Uint8Array(new Int16Array(160).buffer),
      bound: true,
    });
    prod.send(bounded);
    const first = await box.next((m) => m.type === 'prediction');
    expect(first).toMatchObject({
      streamId: 'mic',
      windowIndex: 0,
      windowEnd: 100_000,
      scores: { events: 10 / 11 },
    });
    // A flag this server does not know is refused with the byte it found, not read as a plain frame.
    const flagged = audioFrame(100_000, 10);
    flagged[2] = 0x82;
    prod.send(flagged);
    const error = await prodBox.next((m) => m.type === 'error');
    expect(error).toMatchObject({ code: 'bad_flags' });
    expect((error as { message: string }).message).toMatch(/flags 0x82/);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/braid_ingest_rejected_total\{reason="bad_flags"\} 1/);
    expect(server.activeStreams()).toEqual(['mic']);
  });

  it('survives fuzzing with random bytes and random JSON on both endpoints', async () => {
    const server = await serve({ messagesPerSecond: 100_000 });
    const prod = await connect(server, '/ingest');
    const sub = await connect(server, '/subscribe');
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify({ type: 'hello', ...Object(v) })),
        ),
        async (message) => {
          prod.send(message);
          sub.send(typeof message === 'string' ? message : Buffer.from(message));
        },
      ),
      { numRuns: 300 },
    );
    await roundTrip(prod);
    await roundTrip(sub);
    expect(prod.readyState).toBe(WebSocket.OPEN);
    expect(await (await fetch(`${server.url}/healthz`)).json()).toMatchObject({ status: 'ok' });
    // A well-behaved producer still works after the fuzzing.
    const good = await connect(server, '/ingest');
    const goodBox = inbox(good);
    good.send(hello('after-fuzz'));
    good.send(audioFrame(0, 0));
    await roundTrip(good);
    expect(goodBox.messages.filter((m) => m.type === 'error')).toEqual([]);
  });

  it('rate-limits a flooding producer, counting every refused message', async () => {
    const server = await serve({ messagesPerSecond: 50 });
    const prod = await connect(server, '/ingest');
    const box = inbox(prod);
    prod.send(hello('flood'));
    for (let i = 0; i < 200; i++) prod.send(JSON.stringify({ type: 'text', time: i, seq: i, text: 'x' }));
    await box.next((m) => m.type === 'error' && m.code === 'rate_limited');
    await roundTrip(prod);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const refused = Number(/braid_ingest_rejected_total\{reason="rate_limited"\} (\d+)/.exec(metrics)?.[1]);
    const accepted = Number(/braid_ingest_frames_total (\d+)/.exec(metrics)?.[1]);
    expect(refused).toBeGreaterThan(100);
    expect(accepted + refused).toBe(200);
  });
});

describe('server: slow subscribers', () => {
  it('drops for a stalled subscriber, reports the count, closes it, and never holds back the others', async () => {
    // Big messages (many labels) fill the stalled client's socket buffers quickly.
    const labels = Array.from({ length: 300 }, (_, i) => `label_with_a_long_name_${i}`);
    const server = await serve({
      pipeline: countingPipeline({ windowMicros: 1_000, labels }),
      messagesPerSecond: 1e6,
      subscriber: { maxQueue: 20, maxBufferedBytes: 64 * 1024, stallMs: 300 },
    });
    const stalled = await connect(server, '/subscribe');
    const stalledClosed = new Promise<number>((resolve) => stalled.on('close', (code) => resolve(code)));
    const healthy = await connect(server, '/subscribe');
    const healthyBox = inbox(healthy);
    await healthyBox.next((m) => m.type === 'welcome');
    stalled.send(JSON.stringify({ subscribe: '*' }));
    healthy.send(JSON.stringify({ subscribe: '*' }));
    await Promise.all([roundTrip(stalled), roundTrip(healthy)]);
    (stalled as unknown as { _socket: { pause(): void } })._socket.pause();

    const prod = await connect(server, '/ingest');
    prod.send(hello('busy', { modalities: ['text'] }));
    const windows = 3000;
    // Paced by the healthy reader: never more than 10 windows (half its queue) ahead of what it has read, so it
    // keeps up however loaded the machine is, while the stalled one takes nothing.
    let received = 0;
    healthy.on('message', () => received++);
    for (let i = 0; i < windows; i++) {
      prod.send(JSON.stringify({ type: 'text', time: i * 1000, seq: i, text: 'x' }));
      if (i % 5 === 4 && i >= 10) await healthyBox.next(() => received >= i - 10, 20_000);
    }
    prod.send(JSON.stringify({ type: 'close' }));
    // The healthy subscriber gets every window, promptly, although the other one takes nothing.
    await healthyBox.next((m) => m.type === 'prediction' && m.windowIndex === windows - 1, 15_000);
    expect(healthyBox.messages.filter((m) => m.type === 'prediction')).toHaveLength(windows);
    expect(healthyBox.messages.some((m) => 'dropped' in m)).toBe(false);
    // Keep something flowing so the stall is noticed, then the stalled subscriber is cut off.
    const more = await connect(server, '/ingest');
    more.send(hello('more', { modalities: ['text'] }));
    for (let i = 0; i < 20; i++)
      more.send(JSON.stringify({ type: 'text', time: i * 1000, seq: i, text: 'x' }));
    (stalled as unknown as { _socket: { resume(): void } })._socket.resume();
    const code = await stalledClosed;
    expect([1013, 1006]).toContain(code);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(Number(/braid_subscriber_dropped_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
  }, 30_000);
});

describe('server: security', () => {
  it('refuses to bind beyond loopback without a token', async () => {
    await expect(startServer({ pipeline: countingPipeline(), host: '0.0.0.0', port: 0 })).rejects.toThrow(
      /--token/,
    );
  });

  it('requires the token for ingest, subscribe and metrics when one is set', async () => {
    const server = await serve({ token: 'secret-token-1' });
    await expect(connect(server, '/ingest')).rejects.toThrow(/401/);
    await expect(connect(server, '/subscribe?token=wrong')).rejects.toThrow(/401/);
    await connect(server, '/subscribe?token=secret-token-1');
    await connect(server, '/ingest', { headers: { authorization: 'Bearer secret-token-1' } });
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/metrics?token=secret-token-1`)).status).toBe(200);
  });

  it('checks the Origin of browser connections', async () => {
    const server = await serve({ allowedOrigins: ['https://app.example'] });
    await expect(connect(server, '/subscribe', { origin: 'https://evil.example' })).rejects.toThrow(/403/);
    await connect(server, '/subscribe', { origin: 'https://app.example' });
    await connect(server, '/subscribe', { origin: server.url });
  });

  it('closes connections that send more than the maximum message size', async () => {
    const server = await serve({ maxPayloadBytes: 1024 });
    const prod = await connect(server, '/ingest');
    const closed = new Promise<number>((resolve) => prod.on('close', (code) => resolve(code)));
    prod.send(new Uint8Array(4096));
    expect(await closed).toBe(1009);
  });
});
