import { request } from 'node:http';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { type ErrorMessage, encodeFrame, type ServerMessage } from '../../src/server/protocol.js';
import { type BraidServer, type ServerOptions, startServer } from '../../src/server/server.js';
import { countingPipeline } from '../helpers/counting-pipeline.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { eventually } from '../helpers/source-assertions.js';
import { closed, connect, inbox, metric, openSockets, roundTrip } from '../helpers/ws-client.js';

/**
 * The server against hostile and broken clients: foreign Host headers (DNS rebinding), foreign origins, connection
 * floods, silent sockets, and input the pipeline has to drop — every refusal answered to its sender, named and
 * counted, and nothing that takes the server or another stream down.
 */

const servers: BraidServer[] = [];
afterEach(async () => {
  for (const s of openSockets.splice(0)) s.terminate();
  for (const s of servers.splice(0)) await s.close();
});

let runner: PredictionPipelineRunner;
beforeAll(async () => {
  runner = await PredictionPipelineRunner.create({ model: untrainedModel(), backend: 'cpu-fused' });
});

async function serve(options: Partial<ServerOptions> = {}): Promise<BraidServer> {
  const server = await startServer({ pipeline: countingPipeline(), port: 0, ...options });
  servers.push(server);
  return server;
}

/** A GET with a Host header of our choosing (fetch does not allow setting it). */
function get(server: BraidServer, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const metricsOf = async (server: BraidServer) => (await fetch(`${server.url}/metrics`)).text();

const HOP = 500_000;
const audio = (time: number, seq: number) =>
  encodeFrame({
    modality: 'audio',
    time,
    seq,
    payload: new Uint8Array(new Int16Array(160).fill(300).buffer),
  });
const gray = (time: number, seq: number) =>
  encodeFrame({ modality: 'video', time, seq, payload: new Uint8Array(64 * 48).fill(seq % 255) });
const demoHello = (streamId: string, extra: object = {}) =>
  JSON.stringify({
    type: 'hello',
    version: 1,
    streamId,
    modalities: ['audio', 'text'],
    audio: { sampleRate: 16000, format: 'pcm16' },
    ...extra,
  });
const errors = (box: ReturnType<typeof inbox>, code?: string) =>
  box.messages.filter(
    (m): m is ErrorMessage => m.type === 'error' && (code === undefined || m.code === code),
  );

describe('server: Host and Origin checks (DNS rebinding)', () => {
  it('a loopback server answers only loopback host names on its own port', async () => {
    const server = await serve();
    const port = server.port;
    expect((await get(server, '/api/streams', `127.0.0.1:${port}`)).status).toBe(200);
    expect((await get(server, '/api/streams', `localhost:${port}`)).status).toBe(200);
    expect((await get(server, '/healthz', `[::1]:${port}`)).status).toBe(200);
    const rebound = await get(server, '/api/streams', `evil.example:${port}`);
    expect(rebound.status).toBe(421);
    expect(rebound.body).toMatch(/evil\.example.*loopback/);
    expect((await get(server, '/', `evil.example:${port}`)).status).toBe(421);
    expect((await get(server, '/healthz', '127.0.0.1:1')).status).toBe(421);
    expect((await get(server, '/healthz', 'not a host')).status).toBe(421);
    // The WebSocket a rebound page would open: Host and Origin both the attacker's.
    const evil = `evil.example:${port}`;
    await expect(
      connect(server.url, '/subscribe', { headers: { host: evil }, origin: `http://${evil}` }),
    ).rejects.toThrow(/HTTP 421/);
    await expect(connect(server.url, '/ingest', { headers: { host: evil } })).rejects.toThrow(/HTTP 421/);
    expect(metric(await metricsOf(server), 'braid_connections_refused_total', '{reason="bad_host"}')).toBe(6);
  });

  it('accepts names listed in allowedHosts (a reverse proxy in front)', async () => {
    const server = await serve({ allowedHosts: ['braid.example'] });
    expect((await get(server, '/healthz', 'braid.example')).status).toBe(200);
    expect((await get(server, '/healthz', 'other.example')).status).toBe(421);
  });

  it('compares the Origin by scheme, host and port', async () => {
    const server = await serve({ allowedOrigins: ['https://app.example'] });
    const own = `http://127.0.0.1:${server.port}`;
    await connect(server.url, '/subscribe', { origin: own });
    await connect(server.url, '/subscribe', { origin: 'https://app.example' });
    for (const origin of [
      `https://127.0.0.1:${server.port}`,
      `http://127.0.0.1:${server.port + 1}`,
      `http://localhost:${server.port}`,
      'null',
    ])
      await expect(connect(server.url, '/subscribe', { origin })).rejects.toThrow(/HTTP 403/);
  });
});

describe('server: connection limits and timeouts', () => {
  it('caps producers and subscribers separately, counting refusals', async () => {
    const server = await serve({ connections: { maxProducers: 2, maxSubscribers: 1 } });
    await connect(server.url, '/ingest');
    await connect(server.url, '/ingest');
    await expect(connect(server.url, '/ingest')).rejects.toThrow(/HTTP 503 .*2 producers/);
    // Producers used up their slots; a subscriber still gets in.
    const sub = await connect(server.url, '/subscribe');
    await expect(connect(server.url, '/subscribe')).rejects.toThrow(/HTTP 503/);
    sub.close();
    await closed(sub);
    await eventually(
      async () => metric(await metricsOf(server), 'braid_clients', '{role="subscriber"}') === 0,
    );
    await connect(server.url, '/subscribe');
    const text = await metricsOf(server);
    expect(metric(text, 'braid_connections_refused_total', '{reason="producer_limit"}')).toBe(1);
    expect(metric(text, 'braid_connections_refused_total', '{reason="subscriber_limit"}')).toBe(1);
  });

  it('caps connections per remote address', async () => {
    const server = await serve({ connections: { maxPerAddress: 2, exemptAddresses: [] } });
    await connect(server.url, '/ingest');
    await connect(server.url, '/subscribe');
    await expect(connect(server.url, '/subscribe')).rejects.toThrow(/HTTP 429 .*per address/);
    expect(
      metric(await metricsOf(server), 'braid_connections_refused_total', '{reason="address_limit"}'),
    ).toBe(1);
  });

  it('closes sockets that never say hello, so they cannot hold the slots', async () => {
    const server = await serve({ connections: { maxProducers: 3 }, timeouts: { helloMs: 300 } });
    const idle = await Promise.all([1, 2, 3].map(() => connect(server.url, '/ingest')));
    await expect(connect(server.url, '/ingest')).rejects.toThrow(/HTTP 503/);
    const codes = await Promise.all(idle.map(closed));
    expect(codes).toEqual([1008, 1008, 1008]);
    for (const ws of idle) expect(errors(inbox(ws), 'hello_timeout')).toHaveLength(1);
    await eventually(async () => metric(await metricsOf(server), 'braid_clients', '{role="producer"}') === 0);
    const real = await connect(server.url, '/ingest');
    real.send(JSON.stringify({ type: 'hello', version: 1, streamId: 'real', modalities: ['text'] }));
    await roundTrip(real);
    expect(errors(inbox(real))).toEqual([]);
    expect(
      metric(await metricsOf(server), 'braid_connections_refused_total', '{reason="hello_timeout"}'),
    ).toBe(3);
  });

  it('closes a producer that goes silent, and its stream with it', async () => {
    const server = await serve({ timeouts: { idleMs: 400 } });
    const sub = await connect(server.url, '/subscribe');
    sub.send(JSON.stringify({ subscribe: '*' }));
    const prod = await connect(server.url, '/ingest');
    prod.send(JSON.stringify({ type: 'hello', version: 1, streamId: 'quiet', modalities: ['text'] }));
    prod.send(JSON.stringify({ type: 'text', time: 1000, seq: 0, text: 'hi' }));
    expect(await closed(prod)).toBe(1008);
    expect(errors(inbox(prod), 'idle_timeout')).toHaveLength(1);
    await inbox(sub).next((m) => m.type === 'stream' && m.event === 'closed' && m.streamId === 'quiet');
  });
});

describe('server: refused input is answered to its producer', () => {
  it('refuses at the hello what could never work: frames over the size limit, a rate the model cannot use', async () => {
    const server = await serve({ pipeline: runner, maxPayloadBytes: 1 << 20 });
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(
      JSON.stringify({
        type: 'hello',
        version: 1,
        streamId: 'big',
        modalities: ['video'],
        video: { format: 'rgb', width: 1920, height: 1080 },
      }),
    );
    const tooBig = await box.next((m) => m.type === 'error');
    expect(tooBig).toMatchObject({ code: 'frame_too_large' });
    expect((tooBig as ErrorMessage).message).toMatch(/6220816 bytes.*1048576/);
    // The socket stays usable: a hello that can work is taken — 44.1 kHz stereo too: the features resample.
    prod.send(demoHello('fine', { audio: { sampleRate: 44_100, format: 'pcm16', channels: 2 } }));
    await roundTrip(prod);
    expect(errors(box)).toHaveLength(1);
    expect(server.activeStreams()).toEqual(['fine']);
  });

  it('refuses audio a pipeline without a resampler cannot use, at the hello', async () => {
    const fixedRate = {
      ...countingPipeline(),
      inputs: { audioSampleRate: 16_000, video: { width: 64, height: 48, format: 'gray' as const } },
    };
    const server = await serve({ pipeline: fixedRate });
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(demoHello('rate', { audio: { sampleRate: 22_050, format: 'pcm16' } }));
    expect(await box.next((m) => m.type === 'error')).toMatchObject({
      code: 'unsupported_sample_rate',
      message: expect.stringMatching(/22050 Hz.*16000\.\.16000/),
    });
    prod.send(demoHello('stereo', { audio: { sampleRate: 16_000, format: 'pcm16', channels: 2 } }));
    expect(await box.next((m) => m.type === 'error' && m.code === 'unsupported_channels')).toBeTruthy();
  });

  it('names what a hello got wrong: a rate or channel count no braid server takes, a second hello', async () => {
    const server = await serve({ pipeline: runner });
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(demoHello('odd', { audio: { sampleRate: 96_000, format: 'pcm16' } }));
    expect(await box.next((m) => m.type === 'error')).toMatchObject({
      code: 'unsupported_sample_rate',
      message: expect.stringMatching(/96000 Hz cannot be used: this server takes 8000\.\.48000 Hz/),
    });
    prod.send(demoHello('odd', { audio: { sampleRate: 16_000, format: 'pcm16', channels: 6 } }));
    expect(await box.next((m) => m.type === 'error' && m.code !== 'unsupported_sample_rate')).toMatchObject({
      code: 'unsupported_channels',
      message: expect.stringMatching(/6 channels cannot be used: this server takes 1 or 2/),
    });
    prod.send(demoHello('odd'));
    await roundTrip(prod);
    expect(server.activeStreams()).toEqual(['odd']);
    prod.send(demoHello('other'));
    expect(await box.next((m) => m.type === 'error' && m.code === 'bad_message')).toMatchObject({
      message: expect.stringMatching(/already said hello for stream "odd": one hello a connection/),
    });
    expect(server.activeStreams()).toEqual(['odd']);
  });

  it('answers a message of a million bad items in a line, not in megabytes, and refuses over-long lists', async () => {
    const server = await serve();
    const many = Array(1_000_000).fill(1);
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(JSON.stringify({ type: 'hello', version: 2, streamId: 'big', modalities: many }));
    const refused = await box.next((m) => m.type === 'error');
    expect(refused).toMatchObject({ code: 'bad_hello', message: expect.stringMatching(/modalities/) });
    expect(JSON.stringify(refused).length).toBeLessThan(1500);
    prod.send(demoHello('twice', { modalities: ['audio', 'text', 'audio'] }));
    expect(await box.next((m) => m.type === 'error' && m !== refused)).toMatchObject({
      code: 'bad_hello',
      message: expect.stringMatching(/modalities: lists a modality more than once/),
    });
    prod.send(demoHello('labelled', { version: 2, modalities: ['label'] }));
    await box.next((m) => m.type === 'ready');
    const labels = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`l${i}`, 'on']));
    prod.send(JSON.stringify({ type: 'label', time: 1, seq: 0, labels }));
    expect(await box.next((m) => m.type === 'error' && m.code === 'bad_message')).toMatchObject({
      message: 'labels: at most 256 labels a message',
    });
    // Every item wrong, under the cap: the first few are named, the rest counted.
    const wrong = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`l${i}`, 'on']));
    prod.send(JSON.stringify({ type: 'label', time: 1, seq: 0, labels: wrong }));
    const described = await box.next(
      (m) => m.type === 'error' && m.code === 'bad_message' && /more issues/.test(m.message),
    );
    expect(described).toMatchObject({ message: expect.stringMatching(/; and \d+ more issues$/) });
    expect(JSON.stringify(described).length).toBeLessThan(1500);
    const sub = await connect(server.url, '/subscribe');
    const subBox = inbox(sub);
    await subBox.next((m) => m.type === 'welcome');
    sub.send(JSON.stringify({ subscribe: many }));
    const subRefused = await subBox.next((m) => m.type === 'error');
    expect(subRefused).toMatchObject({ code: 'bad_message' });
    expect(JSON.stringify(subRefused).length).toBeLessThan(1500);
  });

  it('names the message and the reason for duplicate, late, corrupt and over-long input', async () => {
    const server = await serve({ pipeline: runner });
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(
      demoHello('hostile', {
        modalities: ['audio', 'video', 'text'],
        video: { format: 'jpeg' },
      }),
    );
    const jpeg = await sharp({ create: { width: 32, height: 24, channels: 3, background: '#808080' } })
      .jpeg()
      .toBuffer();
    for (let i = 0; i < 50; i++) {
      prod.send(audio(i * 10_000, i));
      if (i === 3) prod.send(audio(30_000, 3)); // a duplicate of a frame just taken
    }
    prod.send(encodeFrame({ modality: 'video', time: 100_000, seq: 0, payload: jpeg }));
    prod.send(encodeFrame({ modality: 'video', time: 200_000, seq: 1, payload: jpeg.subarray(0, 40) }));
    prod.send(JSON.stringify({ type: 'text', time: 250_000, seq: 7, text: 'x'.repeat(5000) }));
    prod.send(JSON.stringify({ type: 'progress', time: 2 * HOP + 300_000 }));
    prod.send(encodeFrame({ modality: 'video', time: 150_000, seq: 2, payload: jpeg })); // its window has closed
    await box.next((m) => m.type === 'error' && m.code === 'late');
    await box.next((m) => m.type === 'error' && m.code === 'corrupt_image');
    expect(errors(box, 'duplicate')).toEqual([
      expect.objectContaining({
        modality: 'audio',
        seq: 3,
        time: 30_000,
        message: expect.stringMatching(/seq 3/),
      }),
    ]);
    expect(errors(box, 'corrupt_image')).toEqual([expect.objectContaining({ modality: 'video', seq: 1 })]);
    expect(errors(box, 'late')).toEqual([
      expect.objectContaining({ modality: 'video', seq: 2, time: 150_000 }),
    ]);
    expect(errors(box, 'text_too_long')).toEqual([
      expect.objectContaining({
        modality: 'text',
        seq: 7,
        message: expect.stringMatching(/5000.*truncated/),
      }),
    ]);
    const text = await metricsOf(server);
    expect(metric(text, 'braid_late_events_total', '{modality="video"}')).toBe(1);
    expect(metric(text, 'braid_rejected_total', '{stage="align",reason="duplicate"}')).toBe(1);
    // A seq beyond uint32 (what recordings store) is refused at the door.
    prod.send(JSON.stringify({ type: 'text', time: 300_000, seq: 2 ** 32, text: 'x' }));
    expect(await box.next((m) => m.type === 'error' && m.code === 'bad_message')).toMatchObject({
      message: expect.stringMatching(/seq/),
    });
  });

  it('counts audio frames whose times contradict their sample counts, and takes them', async () => {
    const server = await serve({ pipeline: runner });
    const sub = await connect(server.url, '/subscribe');
    const subBox = inbox(sub);
    await subBox.next((m) => m.type === 'welcome');
    sub.send(JSON.stringify({ subscribe: ['gappy'] }));
    await subBox.next((m) => m.type === 'subscribed');
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(demoHello('gappy', { modalities: ['audio'] }));
    // 10 ms frames: one stamped 20 ms after the frame before it ends, one 5 ms before, then in step again.
    const times = [0, 10_000, 40_000, 45_000, ...Array.from({ length: 60 }, (_, i) => 55_000 + i * 10_000)];
    for (const [seq, time] of times.entries()) prod.send(audio(time, seq));
    prod.send(JSON.stringify({ type: 'close' }));
    await subBox.next((m) => m.type === 'stream' && m.event === 'closed');
    expect(errors(box)).toEqual([]);
    expect(subBox.messages.filter((m) => m.type === 'prediction').length).toBeGreaterThan(0);
    const text = await metricsOf(server);
    expect(metric(text, 'braid_events_total', '{modality="audio"}')).toBe(times.length);
    expect(metric(text, 'braid_audio_discontinuities_total', '{kind="gap"}')).toBe(1);
    expect(metric(text, 'braid_audio_discontinuities_total', '{kind="overlap"}')).toBe(1);
  });

  it('answers a refusal the pipeline makes after a close to the producer that sent it, not to the next one of the id', async () => {
    const server = await serve({ pipeline: runner });
    // Slow to decode, so the corrupt image behind them is refused after another producer has claimed the id.
    const big = await sharp({
      create: { width: 4096, height: 4096, channels: 3, background: '#808080' },
    })
      .png()
      .toBuffer();
    const corrupt = Buffer.concat([big.subarray(0, 2000), Buffer.alloc(2000, 7)]);
    const pngHello = JSON.stringify({
      type: 'hello',
      version: 2,
      streamId: 'cam',
      modalities: ['video'],
      video: { format: 'png' },
    });
    const first = await connect(server.url, '/ingest');
    const firstBox = inbox(first);
    first.send(pngHello);
    await firstBox.next((m) => m.type === 'ready');
    for (let seq = 0; seq < 6; seq++)
      first.send(encodeFrame({ modality: 'video', time: 1_000_000 + seq * 33_000, seq, payload: big }));
    first.send(encodeFrame({ modality: 'video', time: 1_000_000 + 6 * 33_000, seq: 6, payload: corrupt }));
    first.send(JSON.stringify({ type: 'close' }));
    await roundTrip(first);
    const second = await connect(server.url, '/ingest');
    const secondBox = inbox(second);
    second.send(pngHello);
    await secondBox.next((m) => m.type === 'ready');
    expect(await firstBox.next((m) => m.type === 'error')).toMatchObject({ code: 'corrupt_image', seq: 6 });
    expect(errors(secondBox)).toEqual([]);
  }, 30_000);

  it('tells the producer which windows were dropped in front of the model', async () => {
    const small = await PredictionPipelineRunner.create({
      model: untrainedModel(),
      backend: 'cpu-fused',
      maxQueue: 1,
    });
    const server = await serve({ pipeline: small });
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(demoHello('burst', { modalities: ['audio'] }));
    // 3 s of audio, then one progress bound: six windows close at once into a one-window queue.
    for (let i = 0; i < 300; i++) prod.send(audio(i * 10_000, i));
    prod.send(JSON.stringify({ type: 'progress', time: 3_000_000 }));
    const dropped = await box.next((m) => m.type === 'error' && m.code === 'model_queue_full');
    expect(dropped).toMatchObject({
      windowIndex: expect.any(Number),
      message: expect.stringMatching(/queue of "burst" is full/),
    });
    expect(
      metric(await metricsOf(server), 'braid_rejected_total', '{stage="model",reason="queue_full"}'),
    ).toBeGreaterThan(0);
  });

  it('answers a flood of bad input at a capped rate, saying how many replies it held back', async () => {
    const server = await serve({ pipeline: runner, messagesPerSecond: 100_000 });
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(demoHello('flood'));
    prod.send(audio(0, 0));
    for (let i = 0; i < 200; i++) prod.send(audio(0, 0));
    await roundTrip(prod);
    const first = errors(box, 'duplicate').length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(7);
    // Later refusals, once the limit has refilled, carry the count of those held back.
    let seq = 1;
    await eventually(async () => {
      prod.send(encodeFrame({ modality: 'video', time: 0, seq: seq++, payload: new Uint8Array(4) }));
      await roundTrip(prod);
      return box.messages.some((m) => m.type === 'error' && (m.suppressed ?? 0) > 0);
    });
    const text = await metricsOf(server);
    const suppressed = metric(text, 'braid_error_replies_suppressed_total');
    // Every refusal was either answered or counted as held back: 200 duplicates and the undeclared video frames.
    expect(suppressed + errors(box).length).toBe(200 + seq - 1);
  });

  it("caps a subscriber's error replies too, counted as the subscriber's", async () => {
    // Uncapped, 300 bad messages from a client that never reads were 300 replies piling up in the server's buffer.
    const server = await serve();
    const sub = await connect(server.url, '/subscribe');
    const box = inbox(sub);
    await box.next((m) => m.type === 'welcome');
    for (let i = 0; i < 300; i++) sub.send('x');
    await roundTrip(sub);
    expect(errors(box, 'bad_json').length).toBeLessThanOrEqual(7);
    const text = await metricsOf(server);
    expect(metric(text, 'braid_subscriber_rejected_total', '{reason="bad_json"}')).toBe(300);
    expect(metric(text, 'braid_ingest_rejected_total', '{reason="bad_json"}')).toBe(0);
    expect(metric(text, 'braid_error_replies_suppressed_total') + errors(box).length).toBe(300);
  });

  it('recovers from a bad clock with a reset, keeping the stream and its model state', async () => {
    const server = await serve({ pipeline: runner });
    const sub = await connect(server.url, '/subscribe');
    const subBox = inbox(sub);
    sub.send(JSON.stringify({ subscribe: ['clock'] }));
    await roundTrip(sub);
    const prod = await connect(server.url, '/ingest');
    const box = inbox(prod);
    prod.send(demoHello('clock', { modalities: ['audio'] }));
    const base = 1_700_000_000_000_000;
    let seq = 0;
    const sendAudio = (from: number, frames: number) => {
      for (let i = 0; i < frames; i++) prod.send(audio(from + i * 10_000, seq++));
    };
    sendAudio(base, 150); // 1.5 s
    await subBox.next((m) => m.type === 'prediction');
    prod.send(audio(base + 3_600_000_000, seq++)); // one frame stamped an hour ahead
    sendAudio(base + 1_500_000, 20);
    const refused = await box.next((m) => m.type === 'error' && m.code === 'non_monotonic');
    expect(refused).toMatchObject({ modality: 'audio', time: base + 1_500_000 });
    expect((refused as ErrorMessage).message).toMatch(/reset/);
    prod.send(JSON.stringify({ type: 'reset' }));
    await box.next((m) => m.type === 'error' && m.code === 'discarded_by_restart');
    const before = subBox.messages.filter((m) => m.type === 'prediction').length;
    sendAudio(base + 1_700_000, 100);
    prod.send(JSON.stringify({ type: 'progress', time: base + 2_700_000 }));
    await subBox.next(() => subBox.messages.filter((m) => m.type === 'prediction').length >= before + 2);
    // A clock that jumps back after the reset: windows of the new timeline (lower indices) are still predicted.
    prod.send(JSON.stringify({ type: 'reset' }));
    const afterReset = subBox.messages.filter((m) => m.type === 'prediction').length;
    sendAudio(base, 100);
    prod.send(JSON.stringify({ type: 'progress', time: base + 1_000_000 }));
    await subBox.next(() => subBox.messages.filter((m) => m.type === 'prediction').length >= afterReset + 2);
    const predictions = subBox.messages.filter(
      (m): m is Extract<ServerMessage, { type: 'prediction' }> => m.type === 'prediction',
    );
    expect(predictions.at(-1)!.windowEnd).toBeLessThan(base + 1_600_000);
    const counters = runner.stats().counters;
    expect(counters['stream_restarts']).toBeGreaterThanOrEqual(2);
    expect(counters['model_resets_gap'] ?? 0).toBe(0);
    expect(counters['model_dropped_out_of_order'] ?? 0).toBe(0);
    expect(server.activeStreams()).toEqual(['clock']);
  });

  it('predicts the first window of a producer whose clock starts at 0', async () => {
    const server = await serve({ pipeline: runner });
    const sub = await connect(server.url, '/subscribe');
    const subBox = inbox(sub);
    sub.send(JSON.stringify({ subscribe: '*' }));
    await roundTrip(sub);
    const prod = await connect(server.url, '/ingest');
    prod.send(
      demoHello('from-zero', {
        modalities: ['audio', 'video'],
        video: { format: 'gray', width: 64, height: 48 },
      }),
    );
    for (let i = 0; i < 30; i++) {
      prod.send(audio(i * 10_000, i));
      if (i % 10 === 0) prod.send(gray(i * 10_000, i / 10));
    }
    prod.send(JSON.stringify({ type: 'close' }));
    const first = await subBox.next((m) => m.type === 'prediction');
    expect(first).toMatchObject({ streamId: 'from-zero', present: { audio: true, video: true } });
    const p = first as Extract<ServerMessage, { type: 'prediction' }>;
    expect(p.windowStart).toBeLessThanOrEqual(0);
    expect(p.windowEnd).toBeGreaterThan(0);
  });
});
