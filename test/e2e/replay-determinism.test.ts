import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { AnySourceEvent } from '../../src/core/events.js';
import type { Prediction } from '../../src/core/window.js';
import { EventTracker, eventLine, type LabelEvent } from '../../src/events/event-tracker.js';
import { resolveEventSettings } from '../../src/events/settings.js';
import { saveModel } from '../../src/model/model-io.js';
import { predictionLine } from '../../src/pipeline/prediction-order.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { RecordingReader } from '../../src/record/recording-reader.js';
import { encodeFrame } from '../../src/server/protocol.js';
import { startServer } from '../../src/server/server.js';
import { shardOf } from '../../src/shards/shard-of.js';
import { ShardedPipeline } from '../../src/shards/sharded-pipeline.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'braid-replay-'));
const modelDir = join(dir, 'model');
const recording = join(dir, 'live.mcap');
let livePredictions: Prediction[] = [];

interface LiveSession {
  readonly path?: string;
  /** Audio at `sampleRate` with `channels` channels (the server resamples and downmixes anything but 16 kHz mono). */
  readonly sampleRate?: number;
  readonly channels?: number;
  readonly shards?: number;
  readonly ids?: readonly string[];
  /** Audio frames flagged as progress bounds instead of a progress message every 100 ms. */
  readonly bounds?: boolean;
}

/** A live session: two producers over real WebSockets into `braid serve`'s pipeline, recorded as it runs. */
async function recordLiveSession({
  path = recording,
  sampleRate = 16_000,
  channels = 1,
  shards = 1,
  ids = ['alpha', 'beta'],
  bounds = false,
}: LiveSession = {}): Promise<Prediction[]> {
  const model = untrainedModel(3);
  await saveModel(model, modelDir);
  const runner = await PredictionPipelineRunner.create({ model, backend: 'cpu-fused' });
  // serve --workers N: the streams run in N threads, sharded by stream id.
  const pipeline =
    shards > 1 ? await ShardedPipeline.create(runner, { shards, modelDir, backend: 'cpu-fused' }) : runner;
  const recorder = await McapRecorder.create(path);
  const pending: Promise<void>[] = [];
  const server = await startServer({
    pipeline,
    port: 0,
    messagesPerSecond: 100_000,
    onInput: (input) => {
      if (!('control' in input)) pending.push(recorder.write(input));
    },
  });
  const predictions: Prediction[] = [];
  const sub = new WebSocket(`${server.url.replace('http', 'ws')}/subscribe`);
  await new Promise((r) => sub.once('open', r));
  const closed = new Set<string>();
  // `closed` comes after a stream's last prediction: once both streams are closed, every prediction is here.
  const allClosed = new Promise<void>((resolve) =>
    sub.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'prediction') predictions.push(m);
      if (m.type === 'stream' && m.event === 'closed') closed.add(m.streamId);
      if (closed.size === 2) resolve();
    }),
  );
  sub.send(JSON.stringify({ subscribe: '*' }));

  const t0 = 1_764_000_000_000_000;
  const producers = await Promise.all(
    ids.map(async (streamId, k) => {
      const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ingest`);
      await new Promise((r) => ws.once('open', r));
      ws.send(
        JSON.stringify({
          type: 'hello',
          version: 1,
          streamId,
          modalities: ['audio', 'video', 'text'],
          audio: { sampleRate, format: 'pcm16', channels },
          video: { format: 'gray', width: 64, height: 48 },
        }),
      );
      return { ws, k, streamId };
    }),
  );
  // 8 s of capture: a 440/660 Hz tone with pauses, a moving bar, a text event every 1.7 s.
  for (let tick = 0; tick < 800; tick++) {
    for (const { ws, k } of producers) {
      const time = t0 + tick * 10_000;
      const perFrame = sampleRate / 100;
      const pcm = new Int16Array(perFrame * channels);
      const on = Math.floor(tick / 150) % 2 === k;
      for (let i = 0; i < perFrame; i++)
        for (let c = 0; c < channels; c++)
          pcm[i * channels + c] = on
            ? Math.round(
                (8000 - 3000 * c) *
                  Math.sin((2 * Math.PI * (440 + 220 * k) * (tick * perFrame + i)) / sampleRate),
              )
            : 0;
      ws.send(
        encodeFrame({
          modality: 'audio',
          time,
          seq: tick,
          payload: new Uint8Array(pcm.buffer),
          bound: bounds,
        }),
      );
      if (tick % 10 === k) {
        const frame = new Uint8Array(64 * 48);
        const x = (tick / 10) % 64;
        for (let y = 0; y < 48; y++) frame[y * 64 + x] = 255;
        ws.send(encodeFrame({ modality: 'video', time: t0 + tick * 10_000, seq: tick, payload: frame }));
      }
      if (tick % 170 === 50 + k)
        ws.send(JSON.stringify({ type: 'text', time, seq: tick, text: `message ${tick} from ${k}` }));
      // Live producers send progress bounds (not recorded): windows close earlier, with the same contents.
      if (!bounds && tick % 10 === 9) ws.send(JSON.stringify({ type: 'progress', time: time + 10_000 }));
    }
    if (tick % 50 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  for (const { ws } of producers) ws.close();
  await allClosed;
  await Promise.all(pending);
  await recorder.close();
  sub.close();
  await server.close();
  return predictions;
}

async function replay(
  speed: string,
  out: string,
  file = recording,
  env: NodeJS.ProcessEnv = process.env,
  extra: string[] = [],
): Promise<string> {
  const { stderr } = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/run.ts',
      'replay',
      file,
      '--model',
      modelDir,
      '--speed',
      speed,
      '--out',
      out,
      ...extra,
    ],
    { env },
  );
  // Nothing may be lost on the way: a drop would print this warning (and make the output depend on the speed).
  expect(stderr).not.toMatch(/not every event made it/);
  return readFileSync(out, 'utf8');
}

/** 8 JPEG cameras (160x120) and 1 PNG camera, each with 10 ms audio frames, 4 s: what decoding must keep up with. */
async function recordCompressedSession(path: string): Promise<number> {
  const recorder = await McapRecorder.create(path);
  const t0 = 1_764_000_000_000_000;
  const events: AnySourceEvent[] = [];
  const cameras = [...Array.from({ length: 8 }, (_, k) => `jpeg-${k}`), 'png-0'];
  for (const [k, streamId] of cameras.entries())
    for (let tick = 0; tick < 400; tick++) {
      const time = t0 + tick * 10_000;
      const samples = new Int16Array(160);
      for (let i = 0; i < 160; i++)
        samples[i] = Math.round(6000 * Math.sin((2 * Math.PI * (300 + 40 * k) * (tick * 160 + i)) / 16000));
      events.push({
        streamId,
        modality: 'audio',
        time,
        seq: tick,
        payload: { sampleRate: 16000, channels: 1, samples },
      });
      if (tick % 10 !== k % 10) continue;
      const raw = new Uint8Array(160 * 120);
      const x = (tick * (2 + k)) % 160;
      for (let y = 0; y < 120; y++) for (let dx = 0; dx < 12; dx++) raw[y * 160 + ((x + dx) % 160)] = 250;
      const image = sharp(raw, { raw: { width: 160, height: 120, channels: 1 } });
      const png = streamId.startsWith('png');
      const data = new Uint8Array(await (png ? image.png() : image.jpeg({ quality: 85 })).toBuffer());
      events.push({
        streamId,
        modality: 'video',
        time,
        seq: tick,
        payload: { format: png ? 'png' : 'jpeg', data },
      });
    }
  events.sort((a, b) => a.time - b.time);
  for (const e of events) await recorder.write(e, e.time);
  await recorder.close();
  return cameras.length;
}

describe('record and replay give the live predictions, byte for byte', () => {
  beforeAll(async () => {
    livePredictions = await recordLiveSession();
  }, 120_000);
  afterAll(() => {});

  it('two replays at different speeds write identical output, equal to what subscribers got live', async () => {
    const fast = await replay('max', join(dir, 'max.ndjson'));
    const paced = await replay('4', join(dir, 'x4.ndjson'));
    expect(fast.length).toBeGreaterThan(0);
    expect(paced).toBe(fast);
    const lines = fast.trim().split('\n');
    // 8 s of two streams in 500 ms windows: 16 or 17 windows each (edges depend on the epoch alignment).
    expect(lines.length).toBeGreaterThanOrEqual(32);
    const live = livePredictions
      .sort((a, b) => a.windowEnd - b.windowEnd || a.streamId.localeCompare(b.streamId))
      .map(predictionLine)
      .join('');
    expect(live).toBe(fast);
  }, 120_000);

  it('a 48 kHz stereo session (resampled and downmixed per window), served live by two shard threads, replays in one thread byte-identically, equal to live', async () => {
    const path = join(dir, 'live-48k-stereo.mcap');
    // One stream on each shard thread.
    expect(shardOf('gamma', 2)).not.toBe(shardOf('delta', 2));
    const live = (
      await recordLiveSession({ path, sampleRate: 48_000, channels: 2, shards: 2, ids: ['gamma', 'delta'] })
    )
      .sort((a, b) => a.windowEnd - b.windowEnd || a.streamId.localeCompare(b.streamId))
      .map(predictionLine)
      .join('');
    const fast = await replay('max', join(dir, '48k-max.ndjson'), path);
    const paced = await replay('4', join(dir, '48k-x4.ndjson'), path);
    expect(fast.trim().split('\n').length).toBeGreaterThanOrEqual(32);
    expect(paced).toBe(fast);
    expect(live).toBe(fast);
  }, 120_000);

  it('audio frames flagged as progress bounds give, live and replayed, the predictions of progress messages', async () => {
    const path = join(dir, 'live-bounds.mcap');
    const sorted = (predictions: Prediction[]) =>
      predictions
        .sort((a, b) => a.windowEnd - b.windowEnd || a.streamId.localeCompare(b.streamId))
        .map(predictionLine)
        .join('');
    const live = sorted(await recordLiveSession({ path, bounds: true }));
    expect(live).toBe(sorted(livePredictions));
    expect(await replay('max', join(dir, 'bounds-max.ndjson'), path)).toBe(live);
  }, 120_000);

  it('events: --events-out is byte-identical at any speed, and is what the state machine makes of the predictions', async () => {
    // The untrained model's scores sit near one value: thresholds around its median make events happen.
    const scores = livePredictions.map((p) => p.scores['speech'] as number).sort((a, b) => a - b);
    const median = scores[Math.floor(scores.length / 2)] as number;
    const on = Math.round(median * 1e4) / 1e4;
    const off = Math.max(0, on - 0.001);
    const args = (file: string) => [
      '--events',
      `speech:on=${on},off=${off},min-on=400ms`,
      '--events-out',
      file,
    ];
    const predictions = await replay(
      'max',
      join(dir, 'ev-max.ndjson'),
      recording,
      process.env,
      args(join(dir, 'ev-max.events')),
    );
    await replay('3', join(dir, 'ev-x3.ndjson'), recording, process.env, args(join(dir, 'ev-x3.events')));
    const fast = readFileSync(join(dir, 'ev-max.events'), 'utf8');
    expect(readFileSync(join(dir, 'ev-x3.events'), 'utf8')).toBe(fast);
    const lines = fast
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LabelEvent);
    expect(lines.filter((e) => e.label === 'speech' && e.state === 'on').length).toBeGreaterThan(0);
    expect(Object.keys(lines[0] as object)).toEqual([
      'streamId',
      'label',
      'state',
      'time',
      'score',
      'windowIndex',
    ]);
    // Per stream, exactly what the tracker makes of that stream's predictions, closed at its end.
    const tracker = new EventTracker(
      resolveEventSettings(
        ['speech', 'motion', 'typing', 'conversation'],
        {},
        {
          speech: { on, off, minOn: 400_000 },
        },
      ),
    );
    const parsed = predictions
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Prediction);
    for (const streamId of ['alpha', 'beta']) {
      const mine = parsed.filter((p) => p.streamId === streamId).flatMap((p) => tracker.observe(p));
      mine.push(...tracker.close(streamId));
      expect(lines.filter((e) => e.streamId === streamId)).toEqual(mine.map((e) => JSON.parse(eventLine(e))));
    }
    // replay --out run.mcap records the same events on each stream's events channel, and braid info shows them.
    const mcap = join(dir, 'ev-run.mcap');
    await replay('max', mcap, recording, process.env, args(join(dir, 'ev-mcap.events')).slice(0, 2));
    const recorded: LabelEvent[] = [];
    const reader = await RecordingReader.open(mcap);
    for await (const e of reader.labelEvents()) {
      const { model, ...event } = e;
      expect(model).toMatch(/^model@/);
      recorded.push(JSON.parse(eventLine(event)));
    }
    await reader.close();
    const byKey = (e: LabelEvent) => `${e.streamId} ${e.label} ${e.time} ${e.state}`;
    expect(recorded.map(byKey).sort()).toEqual(lines.map(byKey).sort());
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'info', mcap]);
    expect(stdout).toMatch(/label event channels:\n\s+\/alpha\/events: \d+ on\/off events, model model@/);
  }, 90_000);

  it('JPEG and PNG cameras replay byte-identically at max speed with a starved decoder, 4x and real time', async () => {
    const compressed = join(dir, 'cameras.mcap');
    const streams = await recordCompressedSession(compressed);
    // One libuv thread for sharp: decoding is as slow, next to reading, as on a loaded machine, without loading the
    // machine for the other tests. Before the reader waited for the decoder, this run lost most frames.
    const max = await replay('max', join(dir, 'cameras-max.ndjson'), compressed, {
      ...process.env,
      UV_THREADPOOL_SIZE: '1',
    });
    const x4 = await replay('4', join(dir, 'cameras-x4.ndjson'), compressed);
    const realTime = await replay('1', join(dir, 'cameras-x1.ndjson'), compressed);
    expect(x4).toBe(max);
    expect(realTime).toBe(max);
    const lines = max
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    // 4 s per stream in 500 ms windows: 8 or 9 windows each (edges depend on each stream's phase), all with video.
    expect(lines.length).toBeGreaterThanOrEqual(streams * 8);
    expect(new Set(lines.map((l) => l.streamId)).size).toBe(streams);
    expect(lines.filter((l) => l.present.video).length).toBeGreaterThanOrEqual(streams * 8);
  }, 120_000);
});
