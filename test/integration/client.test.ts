import { afterEach, describe, expect, it } from 'vitest';
import { streamOrigin } from '../../src/align/window-aligner.js';
import { backoffDelay } from '../../src/client/backoff.js';
import { connectProducer, type Producer } from '../../src/client/producer.js';
import { type Subscription, subscribe } from '../../src/client/subscriber.js';
import { windowEndAfter } from '../../src/client/window-grid.js';
import { audioFrameTime } from '../../src/core/time.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import type { PredictionMessage } from '../../src/server/protocol.js';
import { type BraidServer, type ServerOptions, startServer } from '../../src/server/server.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { startProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

/**
 * braid/client against a real server, through a TCP proxy that breaks the network the way networks break: the
 * producer reconnects, resumes and resends what the cut lost, so its stream's predictions are those of an unbroken
 * run; the subscriber reconnects and subscribes again; both notice a silent network by the heartbeat.
 */

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const model = untrainedModel(5);
async function serve(
  options: Partial<ServerOptions> = {},
  latencyMs = 0,
): Promise<{ server: BraidServer; proxy: TcpProxy }> {
  const pipeline = await PredictionPipelineRunner.create({ model, backend: 'cpu-fused' });
  let server: BraidServer | undefined;
  const proxy = await startProxy(() => server!.port, latencyMs);
  // The proxy listens on a port of its own: its Host name is allowed, as a reverse proxy's would be.
  server = await startServer({
    pipeline,
    port: 0,
    messagesPerSecond: 100_000,
    allowedHosts: [`127.0.0.1:${proxy.port}`],
    ...options,
  });
  cleanup.push(
    () => server!.close(),
    () => proxy.close(),
  );
  return { server, proxy };
}

const T0 = 1_700_000_000_000_000;
const tone = (i: number) =>
  new Int16Array(160).map((_, k) => Math.round(2500 * Math.sin(((i * 160 + k) * (300 + (i % 97))) / 16000)));

/** Collects a stream's predictions until the one for the window ending at or after `until`. */
async function collect(
  subscription: Subscription,
  until: number,
): Promise<Omit<PredictionMessage, 'latencyMs'>[]> {
  const got: Omit<PredictionMessage, 'latencyMs'>[] = [];
  for await (const { latencyMs: _latency, ...p } of subscription) {
    got.push(p);
    if (p.windowEnd >= until) break;
  }
  return got;
}

async function produce(
  url: string,
  frames: number,
  during?: (i: number, producer: Producer) => Promise<void> | void,
  onError?: (error: { code: string; message: string }) => void,
) {
  const producer = await connectProducer({
    url,
    streamId: 'client',
    audio: { sampleRate: 16000 },
    reconnect: { initialMs: 20, maxMs: 200 },
    ...(onError && { onError }),
  });
  cleanup.push(() => producer.close());
  for (let i = 0; i < frames; i++) {
    producer.sendAudio(tone(i), T0 + i * 10_000);
    if (i % 5 === 4) producer.progress(T0 + (i + 1) * 10_000);
    await during?.(i, producer);
  }
  return producer;
}

describe('braid/client', () => {
  it('backs off exponentially with full jitter', () => {
    expect(backoffDelay(0, { initialMs: 100 }, () => 1)).toBe(100);
    expect(backoffDelay(3, { initialMs: 100 }, () => 1)).toBe(800);
    expect(backoffDelay(20, { initialMs: 100, maxMs: 5000 }, () => 1)).toBe(5000);
    expect(backoffDelay(3, { initialMs: 100 }, () => 0.25)).toBe(200);
    expect(backoffDelay(3, { initialMs: 100 }, () => 0)).toBe(0);
  });

  it('streams to a subscriber, and a cut mid-stream loses nothing: the predictions of an unbroken run', async () => {
    const frames = 500; // 5 s
    const until = T0 + frames * 10_000 - 500_000;

    const clean = await serve();
    const cleanSub = subscribe({ url: clean.proxy.url, streams: ['client'] });
    cleanup.push(() => cleanSub.close());
    await cleanSub.welcome;
    const cleanGot = collect(cleanSub, until);
    const cleanProducer = await produce(clean.proxy.url, frames);
    const reference = await cleanGot;
    await cleanProducer.close();
    expect(reference.length).toBeGreaterThanOrEqual(8);

    const broken = await serve();
    const sub = subscribe({ url: broken.server.url, streams: ['client'] });
    cleanup.push(() => sub.close());
    await sub.welcome;
    const got = collect(sub, until);
    let resumes = 0;
    const producer = await produce(broken.proxy.url, frames, async (i, p) => {
      // Cut twice with frames in flight, and keep sending while the producer reconnects.
      if (i === 170 || i === 333) broken.proxy.cut();
      if (i === 180 || i === 343) {
        while (p.stats.resumes === resumes) await new Promise((r) => setTimeout(r, 5));
        resumes = p.stats.resumes;
      }
    });
    expect(await got).toEqual(reference);
    expect(producer.stats.resumes).toBe(2);
    expect(producer.stats.overflowed).toBe(0);
    expect(broken.proxy.connections).toBeGreaterThanOrEqual(3);
  });

  it('on a long link, goes on capturing through a reconnect: what the cut lost goes first, nothing twice', async () => {
    const frames = 300;
    const until = T0 + frames * 10_000 - 500_000;
    const clean = await serve();
    const cleanSub = subscribe({ url: clean.server.url, streams: ['client'] });
    cleanup.push(() => cleanSub.close());
    await cleanSub.welcome;
    const cleanGot = collect(cleanSub, until);
    const cleanProducer = await produce(clean.server.url, frames);
    const reference = await cleanGot;
    await cleanProducer.close();

    // 40 ms each way: the new connection's ready comes 80 ms after its hello, while capture goes on (a frame every
    // 2 ms here), never waiting for the resume.
    const far = await serve({}, 40);
    const sub = subscribe({ url: far.server.url, streams: ['client'] });
    cleanup.push(() => sub.close());
    await sub.welcome;
    const got = collect(sub, until);
    const refusals: string[] = [];
    const producer = await produce(
      far.proxy.url,
      frames,
      async (i) => {
        if (i === 120) far.proxy.cut();
        await new Promise((r) => setTimeout(r, 2));
      },
      (e) => refusals.push(`${e.code}: ${e.message}`),
    );
    expect(await got).toEqual(reference);
    expect(refusals).toEqual([]);
    expect(producer.stats.resumes).toBe(1);
  });

  it('does not send a reset again after a resume: the stream restarts its timeline once', async () => {
    const { server, proxy } = await serve();
    const sub = subscribe({ url: server.url, streams: ['client'] });
    cleanup.push(() => sub.close());
    await sub.welcome;
    const predictions = sub[Symbol.asyncIterator]();
    const until = async (end: number) => {
      for (;;) {
        const { value, done } = await predictions.next();
        if (done || value.windowEnd >= end) return;
      }
    };
    const refusals: string[] = [];
    const producer = await connectProducer({
      url: proxy.url,
      streamId: 'client',
      audio: { sampleRate: 16000 },
      reconnect: { initialMs: 20, maxMs: 200 },
      onError: (e) => refusals.push(e.code),
    });
    cleanup.push(() => producer.close());
    // The clock jumps back 100 s after half a second: a reset, then the new timeline.
    const T1 = T0 - 100_000_000;
    for (let i = 0; i < 50; i++) producer.sendAudio(tone(i), T0 + i * 10_000);
    producer.reset();
    for (let i = 0; i < 150; i++) producer.sendAudio(tone(i), T1 + i * 10_000);
    producer.progress(T1 + 150 * 10_000);
    // A prediction of the new timeline: the server has taken the reset and what followed it.
    await until(T1 + 1_000_000);
    proxy.cut();
    while (producer.stats.resumes === 0) await new Promise((r) => setTimeout(r, 5));
    for (let i = 150; i < 250; i++) producer.sendAudio(tone(i), T1 + i * 10_000);
    producer.progress(T1 + 250 * 10_000);
    await until(T1 + 2_000_000);
    // Closed: every reply the server sent came before its close frame.
    await producer.close();
    expect(refusals.filter((code) => code === 'discarded_by_restart')).toHaveLength(1);
  });

  it('close() while it reconnects ends it: the handshake under way says no hello after it', async () => {
    // 100 ms each way: a reconnect's handshake is still under way when close() comes.
    const { proxy } = await serve({}, 100);
    const first = await connectProducer({
      url: proxy.url,
      streamId: 'client',
      audio: { sampleRate: 16000 },
      reconnect: { initialMs: 1, maxMs: 1 },
    });
    proxy.cut();
    while (proxy.connections < 2) await new Promise((r) => setTimeout(r, 1));
    await first.close(100);
    // Had that handshake gone on, its hello (with the token) would have taken the suspended stream back before this
    // one, made after it over the same link, and this one would be refused as stream_in_use.
    const second = await connectProducer({
      url: proxy.url,
      streamId: 'client',
      audio: { sampleRate: 16000 },
    });
    cleanup.push(() => second.close());
    expect(second.ready.resumed).toBe(true);
  });

  it('close(timeoutMs) is bounded on a silent network, not left to the close handshake', async () => {
    const { proxy } = await serve();
    const producer = await connectProducer({
      url: proxy.url,
      streamId: 'client',
      audio: { sampleRate: 16000 },
    });
    proxy.blackhole();
    const started = Date.now();
    await producer.close(300);
    // ws's own close timeout is 30 s: well under it means the deadline cut the socket.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("ends audio frames on the stream's window ends from ready.windowing: each window closes on its last frame", async () => {
    const { server } = await serve();
    const sub = subscribe({ url: server.url, streams: ['grid'] });
    cleanup.push(() => sub.close());
    await sub.welcome;
    const producer = await connectProducer({
      url: server.url,
      streamId: 'grid',
      audio: { sampleRate: 16000 },
    });
    cleanup.push(() => producer.close());
    const { origin, size, hop, phase } = producer.ready.windowing;
    // The grid the server's aligner windows this stream with (per-stream phase hashed from its id).
    expect(origin).toBe(streamOrigin('grid', { origin: 0, hop, phase }));
    expect(phase).toBe('stream');
    const grid = { origin, size, hop };
    const first = windowEndAfter(grid, T0);
    const ends = [first, first + hop, first + 2 * hop];
    const got = collect(sub, ends[2]!);
    // 20 ms frames from an arbitrary start, each flagged as the bound at its end, the lengths the producer gives
    // (one ending on each window end).
    const start = T0 + 3_217;
    let samples = 0;
    const lengths = new Set<number>();
    for (;;) {
      const time = audioFrameTime(start, samples, 16000);
      if (time >= ends[2]!) break;
      const length = producer.nextAudioFrameSamples(320);
      lengths.add(length);
      producer.sendAudio(new Int16Array(length).fill(1000), samples === 0 ? time : undefined, {
        bound: true,
      });
      samples += length;
    }
    // Frames stay within half and one and a half of their usual length, and some were cut.
    expect([...lengths].every((n) => n >= 160 && n <= 480)).toBe(true);
    expect(lengths.size).toBeGreaterThan(1);
    // Nothing was sent past the last window's end: its own last frame closed it.
    const predictions = await got;
    expect(predictions.map((p) => p.windowEnd).filter((e) => e >= ends[0]!)).toEqual(ends);
    expect(predictions.every((p) => (p.windowEnd - origin - size) % hop === 0)).toBe(true);
  });

  it('notices a silent network by the heartbeat, on both ends, and resumes', async () => {
    const { server, proxy } = await serve({ heartbeatMs: 100 });
    const statuses: string[] = [];
    const producer = await connectProducer({
      url: proxy.url,
      streamId: 'quiet-net',
      audio: { sampleRate: 16000 },
      reconnect: { initialMs: 20, maxMs: 100 },
      connectTimeoutMs: 300,
      onStatus: (s, detail) => statuses.push(detail ? `${s} ${detail}` : s),
    });
    cleanup.push(() => producer.close());
    proxy.blackhole();
    // The client's watchdog drops the dead connection and reconnects; until the network is back that fails.
    while (producer.stats.reconnects === 0) await new Promise((r) => setTimeout(r, 10));
    proxy.restore();
    while (!statuses.includes('ready resumed')) await new Promise((r) => setTimeout(r, 10));
    expect(server.activeStreams()).toEqual(['quiet-net']);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^braid_stream_resumes_total [1-9]/m);
  });

  it('a subscriber reconnects after a cut and subscribes again', async () => {
    const { proxy } = await serve();
    const sub = subscribe({ url: proxy.url, streams: '*', reconnect: { initialMs: 20, maxMs: 100 } });
    cleanup.push(() => sub.close());
    await sub.welcome;
    const producer = await connectProducer({ url: proxy.url, streamId: 'after-cut', text: true });
    cleanup.push(() => producer.close());
    proxy.cut();
    await sub.welcome;
    while (sub.stats.reconnects === 0) await new Promise((r) => setTimeout(r, 10));
    await sub.welcome; // the welcome of the new connection
    // The producer resumed too; a window it closes now reaches the resubscribed subscriber.
    producer.sendText('hello again', T0);
    producer.progress(T0 + 1_000_000);
    const iterator = sub[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value).toMatchObject({ streamId: 'after-cut', present: { text: true } });
  });

  it('a subscription closed at once never connects; one that gives up rejects its welcome', async () => {
    const { server, proxy } = await serve();
    const statuses: string[] = [];
    const early = subscribe({ url: proxy.url, streams: '*', onStatus: (s) => statuses.push(s) });
    early.close();
    await expect(early.welcome).rejects.toThrow(/closed before a welcome/);
    // Another subscriber connected after it through the same link: the server has heard of every earlier one.
    const later = subscribe({ url: proxy.url, streams: '*' });
    cleanup.push(() => later.close());
    await later.welcome;
    expect(statuses).toEqual(['closed']);
    expect(proxy.connections).toBe(1);
    const health = (await (await fetch(`${server.url}/healthz`)).json()) as { subscribers: number };
    expect(health.subscribers).toBe(1);

    proxy.blackhole();
    const doomed = subscribe({
      url: proxy.url,
      streams: '*',
      connectTimeoutMs: 50,
      reconnect: { initialMs: 1, maxMs: 1, maxAttempts: 2 },
    });
    await expect(doomed.welcome).rejects.toThrow(/gave up after 2 attempts/);
  });

  it('refuses, without retrying, a hello that cannot work', async () => {
    const { proxy } = await serve();
    await expect(
      connectProducer({ url: proxy.url, streamId: 'bad id with spaces', audio: { sampleRate: 16000 } }),
    ).rejects.toThrow(/bad_hello.*streamId/);
  });
});
