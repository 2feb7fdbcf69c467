import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import {
  encodeFrame,
  type PredictionMessage,
  type ReadyMessage,
  readyMessageSchema,
  serverMessageSchema,
} from '../../src/server/protocol.js';
import { type BraidServer, type ServerOptions, startServer } from '../../src/server/server.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { closed, connect, inbox, metric, openSockets, roundTrip } from '../helpers/ws-client.js';

/**
 * Protocol v2 over real sockets: the ready and subscribed answers, the heartbeat, and a producer whose connection is
 * cut (no close frame) resuming its stream — same model state, same window grid, seqs continuing — so that its
 * predictions are those of a run that was never cut.
 */

const servers: BraidServer[] = [];
afterEach(async () => {
  for (const s of openSockets.splice(0)) s.terminate();
  for (const s of servers.splice(0)) await s.close();
});

let model: ReturnType<typeof untrainedModel>;
beforeAll(() => {
  model = untrainedModel(3);
});

async function serve(options: Partial<ServerOptions> = {}): Promise<BraidServer> {
  const pipeline = await PredictionPipelineRunner.create({ model, modelId: 'test@1', backend: 'cpu-fused' });
  const server = await startServer({
    pipeline,
    port: 0,
    messagesPerSecond: 100_000,
    ...options,
  });
  servers.push(server);
  return server;
}

const T0 = 1_700_000_000_000_000;
const hello = (extra: object = {}) =>
  JSON.stringify({
    type: 'hello',
    version: 2,
    streamId: 'cut',
    modalities: ['audio', 'video'],
    audio: { sampleRate: 16000, format: 'pcm16' },
    video: { format: 'gray', width: 64, height: 48 },
    ...extra,
  });

/** 10 ms audio frames with a slowly changing tone, and a video frame every 100 ms: 6 s of capture. */
function frames(): Uint8Array[][] {
  const ticks: Uint8Array[][] = [];
  for (let i = 0; i < 600; i++) {
    const pcm = new Int16Array(160).map((_, k) =>
      Math.round(3000 * Math.sin(((i * 160 + k) * (200 + i)) / 16000)),
    );
    const tick = [
      encodeFrame({ modality: 'audio', time: T0 + i * 10_000, seq: i, payload: new Uint8Array(pcm.buffer) }),
    ];
    if (i % 10 === 0)
      tick.push(
        encodeFrame({
          modality: 'video',
          time: T0 + i * 10_000,
          seq: i / 10,
          payload: new Uint8Array(64 * 48).fill(i % 256),
        }),
      );
    ticks.push(tick);
  }
  return ticks;
}
const TICKS = frames();

async function subscriber(server: BraidServer) {
  const sub = await connect(server.url, '/subscribe');
  const box = inbox(sub);
  sub.send(JSON.stringify({ subscribe: ['cut'] }));
  await box.next((m) => m.type === 'subscribed');
  return box;
}

const predictions = (box: ReturnType<typeof inbox>) =>
  box.messages
    .filter((m): m is PredictionMessage => m.type === 'prediction')
    .map(({ latencyMs: _latency, ...p }) => p);

/** Waits for the stream's close and the prediction of its last window. */
async function finished(box: ReturnType<typeof inbox>): Promise<void> {
  await box.next((m) => m.type === 'stream' && m.event === 'closed');
  await box.next((m) => m.type === 'prediction' && m.windowEnd >= T0 + 6_000_000);
}

describe('protocol v2', () => {
  it('answers a hello with ready and a subscribe with subscribed, both valid against the published schemas', async () => {
    const server = await serve({ heartbeatMs: 5000, resumeGraceMs: 12_000 });
    const sub = await connect(server.url, '/subscribe');
    const subBox = inbox(sub);
    const welcome = await subBox.next((m) => m.type === 'welcome');
    expect(welcome).toMatchObject({
      version: 2,
      versions: [1, 2],
      model: { id: 'test@1' },
      heartbeatMs: 5000,
    });
    sub.send(JSON.stringify({ subscribe: ['cut', 'later'] }));
    expect(await subBox.next((m) => m.type === 'subscribed')).toEqual({
      type: 'subscribed',
      streams: ['cut', 'later'],
      notOpen: ['cut', 'later'],
      predictions: true,
      events: false,
    });
    const prod = await connect(server.url, '/ingest');
    prod.send(hello());
    const ready = (await inbox(prod).next((m) => m.type === 'ready')) as ReadyMessage;
    expect(readyMessageSchema.parse(ready)).toEqual(ready);
    expect(ready).toMatchObject({
      streamId: 'cut',
      resumed: false,
      model: { id: 'test@1', labels: ['speech', 'motion', 'typing', 'conversation'] },
      windowing: { size: 500_000, hop: 500_000, phase: 'stream', idleTimeoutMs: 1000 },
      accepts: {
        audio: { sampleRates: { min: 8000, max: 48_000 }, channels: [1, 2], preferredSampleRate: 16000 },
        frameBounds: true,
      },
      heartbeatMs: 5000,
      resumeGraceMs: 12_000,
    });
    expect(ready.resumeToken.length).toBeGreaterThan(16);
    for (const m of [...subBox.messages, ...inbox(prod).messages])
      expect(serverMessageSchema.safeParse(m).success).toBe(true);
  });

  it('a v1 producer gets no ready (v1 is still served as it was)', async () => {
    const server = await serve();
    const prod = await connect(server.url, '/ingest');
    prod.send(hello({ version: 1 }));
    await roundTrip(prod);
    expect(inbox(prod).messages).toEqual([]);
    expect(server.activeStreams()).toEqual(['cut']);
  });
});

describe('resume after a cut connection', () => {
  it('continues the stream: predictions equal a run that was never cut', async () => {
    // Uninterrupted.
    const a = await serve();
    const aBox = await subscriber(a);
    const whole = await connect(a.url, '/ingest');
    whole.send(hello());
    for (const tick of TICKS) for (const f of tick) whole.send(f);
    whole.send(JSON.stringify({ type: 'close' }));
    await finished(aBox);
    const reference = predictions(aBox);
    expect(reference.length).toBeGreaterThanOrEqual(12);

    // Cut at 2.95 s — in the middle of a window — without a close frame, then resumed with the token.
    const b = await serve();
    const bBox = await subscriber(b);
    const first = await connect(b.url, '/ingest');
    first.send(hello());
    const { resumeToken } = (await inbox(first).next((m) => m.type === 'ready')) as ReadyMessage;
    for (const tick of TICKS.slice(0, 295)) for (const f of tick) first.send(f);
    await roundTrip(first);
    first.terminate();
    await bBox.next((m) => m.type === 'stream' && m.event === 'suspended');
    const second = await connect(b.url, '/ingest');
    second.send(hello({ resumeToken }));
    const ready = (await inbox(second).next((m) => m.type === 'ready')) as ReadyMessage;
    expect(ready).toMatchObject({
      resumed: true,
      resumeToken,
      last: { audio: { seq: 294, time: T0 + 2_940_000 }, video: { seq: 29, time: T0 + 2_900_000 } },
    });
    await bBox.next((m) => m.type === 'stream' && m.event === 'resumed');
    for (const tick of TICKS.slice(295)) for (const f of tick) second.send(f);
    second.send(JSON.stringify({ type: 'close' }));
    await finished(bBox);
    expect(predictions(bBox)).toEqual(reference);
    const text = await (await fetch(`${b.url}/metrics`)).text();
    expect(metric(text, 'braid_stream_suspensions_total')).toBe(1);
    expect(metric(text, 'braid_stream_resumes_total')).toBe(1);
    expect(bBox.messages.filter((m) => m.type === 'stream' && m.event === 'opened')).toHaveLength(1);
  });

  it('marks the windows whose data the cut lost as partial, and counts them', async () => {
    const server = await serve();
    const box = await subscriber(server);
    const first = await connect(server.url, '/ingest');
    first.send(hello());
    for (const tick of TICKS.slice(0, 200)) for (const f of tick) first.send(f);
    await roundTrip(first);
    first.terminate();
    await box.next((m) => m.type === 'stream' && m.event === 'suspended');
    // Resumed without a token (a suspended stream resumes by its id), and without resending 2.0–2.6 s.
    const second = await connect(server.url, '/ingest');
    second.send(hello());
    expect(await inbox(second).next((m) => m.type === 'ready')).toMatchObject({ resumed: true });
    for (const tick of TICKS.slice(260)) for (const f of tick) second.send(f);
    second.send(JSON.stringify({ type: 'close' }));
    await finished(box);
    const partial = predictions(box).filter((p) => p.partial);
    expect(partial.length).toBeGreaterThanOrEqual(2);
    for (const p of partial) {
      expect(p.windowEnd).toBeGreaterThan(T0 + 1_990_000);
      expect(p.windowStart).toBeLessThan(T0 + 2_600_000);
    }
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(metric(text, 'braid_partial_windows_total')).toBe(partial.length);
  });

  it('closes a suspended stream when the grace runs out; with a grace of 0 a cut closes it at once', async () => {
    const server = await serve({ resumeGraceMs: 300 });
    const box = await subscriber(server);
    const prod = await connect(server.url, '/ingest');
    prod.send(hello());
    for (const tick of TICKS.slice(0, 50)) for (const f of tick) prod.send(f);
    await roundTrip(prod);
    prod.terminate();
    await box.next((m) => m.type === 'stream' && m.event === 'suspended');
    await box.next((m) => m.type === 'stream' && m.event === 'closed');
    expect(
      metric(await (await fetch(`${server.url}/metrics`)).text(), 'braid_stream_grace_expired_total'),
    ).toBe(1);

    const none = await serve({ resumeGraceMs: 0 });
    const noneBox = await subscriber(none);
    const p2 = await connect(none.url, '/ingest');
    p2.send(hello());
    await roundTrip(p2);
    p2.terminate();
    await noneBox.next((m) => m.type === 'stream' && m.event === 'closed');
    expect(noneBox.messages.some((m) => m.type === 'stream' && m.event === 'suspended')).toBe(false);
  });

  it('lets the token holder take a half-open stream over; others get stream_in_use or bad_resume_token', async () => {
    const server = await serve();
    const old = await connect(server.url, '/ingest');
    old.send(hello());
    const { resumeToken } = (await inbox(old).next((m) => m.type === 'ready')) as ReadyMessage;
    const stranger = await connect(server.url, '/ingest');
    stranger.send(hello());
    expect(await inbox(stranger).next((m) => m.type === 'error')).toMatchObject({ code: 'stream_in_use' });
    stranger.send(hello({ resumeToken: 'not-the-token' }));
    expect(await inbox(stranger).next((m) => m.type === 'error' && m.code !== 'stream_in_use')).toMatchObject(
      {
        code: 'bad_resume_token',
      },
    );
    const owner = await connect(server.url, '/ingest');
    owner.send(hello({ resumeToken }));
    expect(await inbox(owner).next((m) => m.type === 'ready')).toMatchObject({ resumed: true });
    expect(await closed(old)).toBe(1006); // the stale connection is cut off
    expect(server.activeStreams()).toEqual(['cut']);
  });

  it('cuts the old producer off when the token holder takes over with other formats', async () => {
    const server = await serve();
    const box = await subscriber(server);
    const old = await connect(server.url, '/ingest');
    old.send(hello());
    const { resumeToken } = (await inbox(old).next((m) => m.type === 'ready')) as ReadyMessage;
    const owner = await connect(server.url, '/ingest');
    owner.send(hello({ resumeToken, modalities: ['audio'], video: undefined }));
    expect(await inbox(owner).next((m) => m.type === 'ready')).toMatchObject({ resumed: false });
    // Nothing more of the old producer can reach the new stream under its id.
    expect(await closed(old)).toBe(1006);
    await box.next((m) => m.type === 'stream' && m.event === 'closed');
    expect(server.activeStreams()).toEqual(['cut']);
  });

  it('starts a new stream when the resuming hello declares other formats', async () => {
    const server = await serve();
    const box = await subscriber(server);
    const first = await connect(server.url, '/ingest');
    first.send(hello());
    await roundTrip(first);
    first.terminate();
    await box.next((m) => m.type === 'stream' && m.event === 'suspended');
    const second = await connect(server.url, '/ingest');
    second.send(hello({ modalities: ['audio'], video: undefined }));
    expect(await inbox(second).next((m) => m.type === 'ready')).toMatchObject({ resumed: false });
    await box.next((m) => m.type === 'stream' && m.event === 'closed');
    await box.next(
      () => box.messages.filter((m) => m.type === 'stream' && m.event === 'opened').length === 2,
    );
  });

  it('resumes a hello that lists the same modalities in another order, or with a format it does not use', async () => {
    const server = await serve();
    const box = await subscriber(server);
    const first = await connect(server.url, '/ingest');
    first.send(hello({ modalities: ['audio', 'text'], video: undefined }));
    const { resumeToken } = (await inbox(first).next((m) => m.type === 'ready')) as ReadyMessage;
    first.terminate();
    await box.next((m) => m.type === 'stream' && m.event === 'suspended');
    const second = await connect(server.url, '/ingest');
    // The video format is for no declared modality, and the audio format is spelt in another key order.
    second.send(
      hello({
        modalities: ['text', 'audio'],
        audio: { format: 'pcm16', sampleRate: 16000, channels: 1 },
        resumeToken,
      }),
    );
    expect(await inbox(second).next((m) => m.type === 'ready')).toMatchObject({ resumed: true });
    expect(box.messages.filter((m) => m.type === 'stream' && m.event === 'closed')).toEqual([]);
  });
});

describe('heartbeat', () => {
  it('cuts off a producer that answers no pings and suspends its stream; a subscriber likewise', async () => {
    const server = await serve({ heartbeatMs: 100 });
    const box = await subscriber(server);
    const deaf = await connect(server.url, '/ingest', { autoPong: false });
    deaf.send(hello());
    const { resumeToken } = (await inbox(deaf).next((m) => m.type === 'ready')) as ReadyMessage;
    expect(await closed(deaf)).toBe(1006);
    await box.next((m) => m.type === 'stream' && m.event === 'suspended');
    const deafSubscriber = await connect(server.url, '/subscribe', { autoPong: false });
    expect(await closed(deafSubscriber)).toBe(1006);
    const back = await connect(server.url, '/ingest');
    back.send(hello({ resumeToken }));
    expect(await inbox(back).next((m) => m.type === 'ready')).toMatchObject({ resumed: true });
    // A client that does answer stays connected across many heartbeats.
    let pings = 0;
    await new Promise<void>((resolve) => {
      back.on('ping', () => {
        if (++pings === 5) resolve();
      });
    });
    expect(back.readyState).toBe(WebSocket.OPEN);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(metric(text, 'braid_heartbeat_timeouts_total')).toBe(2);
  });
});
