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
): Promise<{ server: BraidServer; proxy: TcpProxy }> {
  const pipeline = await PredictionPipelineRunner.create({ model, backend: 'cpu-fused' });
  let server: BraidServer | undefined;
  const proxy = await startProxy(() => server!.port);
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
) {
  const producer = await connectProducer({
    url,
    streamId: 'client',
    audio: { sampleRate: 16000 },
    reconnect: { initialMs: 20, maxMs: 200 },
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

  it('refuses, without retrying, a hello that cannot work', async () => {
    const { proxy } = await serve();
    await expect(
      connectProducer({ url: proxy.url, streamId: 'bad id with spaces', audio: { sampleRate: 16000 } }),
    ).rejects.toThrow(/bad_hello.*streamId/);
  });
});
