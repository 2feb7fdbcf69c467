import { concatMap, from, lastValueFrom, type Observable, timer, toArray } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { StreamInput } from '../../src/core/events.js';
import type { InputRefusal } from '../../src/core/refusal.js';
import type { Prediction } from '../../src/core/window.js';
import { loadModel } from '../../src/model/model-io.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import type { StreamMark } from '../../src/pipeline/stream-lifecycle.js';
import { shardOf } from '../../src/shards/shard-of.js';
import { ShardedPipeline } from '../../src/shards/sharded-pipeline.js';
import { DEMO_MODEL_DIR } from '../helpers/demo-pipeline.js';

const opened: ShardedPipeline[] = [];
afterEach(async () => {
  for (const p of opened.splice(0)) await p.close();
});

/** `streams` live-like streams of 5 s: tones with pauses, a moving bar, text now and then, progress bounds. */
function session(streams: number): StreamInput[] {
  const t0 = 1_764_000_000_000_000;
  const inputs: StreamInput[] = [];
  const ids = Array.from({ length: streams }, (_, k) => `cam-${k}`);
  for (const streamId of ids)
    inputs.push({ control: 'open', streamId, modalities: ['audio', 'video', 'text'] });
  for (let tick = 0; tick < 500; tick++)
    for (const [k, streamId] of ids.entries()) {
      const time = t0 + tick * 10_000;
      const samples = new Int16Array(160);
      const on = Math.floor(tick / (60 + 10 * k)) % 2 === 0;
      for (let i = 0; i < 160; i++)
        samples[i] = on
          ? Math.round(7000 * Math.sin((2 * Math.PI * (300 + 50 * k) * (tick * 160 + i)) / 16000))
          : 0;
      inputs.push({
        streamId,
        modality: 'audio',
        time,
        seq: tick,
        payload: { sampleRate: 16000, channels: 1, samples },
      });
      if (tick % 10 === k % 10) {
        const data = new Uint8Array(64 * 48);
        for (let y = 0; y < 48; y++) data[y * 64 + ((tick * (1 + k)) % 64)] = 255;
        inputs.push({
          streamId,
          modality: 'video',
          time,
          seq: tick,
          payload: { format: 'gray', width: 64, height: 48, data },
        });
      }
      if (tick % 130 === 7 * k)
        inputs.push({ streamId, modality: 'text', time, seq: tick, payload: { text: `note ${tick}` } });
      if (tick % 10 === 9) inputs.push({ control: 'progress', streamId, time: time + 10_000 });
    }
  for (const streamId of ids) inputs.push({ control: 'close', streamId });
  return inputs;
}

/** The inputs in chunks of 1 to 200 (a fixed pattern), each in its own macrotask. */
function chunked(inputs: StreamInput[]): Observable<StreamInput> {
  const chunks: StreamInput[][] = [];
  for (let at = 0, k = 0; at < inputs.length; k++) {
    const size = 1 + ((k * 37) % 200);
    chunks.push(inputs.slice(at, at + size));
    at += size;
  }
  return from(chunks).pipe(concatMap((chunk) => timer(0).pipe(concatMap(() => from(chunk)))));
}

const exact = (ps: Prediction[]) =>
  ps
    .map((p) => JSON.stringify(p))
    .sort()
    .join('\n');

async function sharded(shards: number, maxInFlight?: number): Promise<ShardedPipeline> {
  const runner = await PredictionPipelineRunner.create({
    model: await loadModel(DEMO_MODEL_DIR),
    backend: 'cpu-fused',
  });
  const pipeline = await ShardedPipeline.create(runner, {
    shards,
    modelDir: DEMO_MODEL_DIR,
    backend: 'cpu-fused',
    maxInFlight,
  });
  opened.push(pipeline);
  return pipeline;
}

describe('streams sharded over worker threads (serve --workers)', () => {
  // In one burst, every shard's inputs go in one packed buffer; in chunks of 1 to 200 over many turns of the event
  // loop, the shards take small batches as objects and larger ones packed, interleaved.
  it.each([
    ['in one burst', (inputs: StreamInput[]) => from(inputs)],
    ['in chunks of 1 to 200, over many turns', chunked],
  ])(
    'give the single-threaded pipeline’s predictions, bit for bit, with every stream’s end after its last (%s)',
    async (_, arrive) => {
      const inputs = session(7);
      const single = await PredictionPipelineRunner.create({
        model: await loadModel(DEMO_MODEL_DIR),
        backend: 'cpu-fused',
      });
      const expected = await lastValueFrom(single.run(from(inputs)).pipe(toArray()));
      const pipeline = await sharded(3);
      // The streams really are spread: no shard owns them all.
      expect(new Set(Array.from({ length: 7 }, (_, k) => shardOf(`cam-${k}`, 3))).size).toBeGreaterThan(1);
      const marks: { mark: StreamMark; after: number }[] = [];
      const got: Prediction[] = [];
      await new Promise<void>((resolve, reject) =>
        pipeline
          .run(arrive(inputs), { onStream: (mark) => marks.push({ mark, after: got.length }) })
          .subscribe({
            next: (p) => got.push(p),
            error: reject,
            complete: resolve,
          }),
      );
      expect(expected.length).toBeGreaterThanOrEqual(7 * 9);
      expect(exact(got)).toBe(exact(expected));
      for (let k = 0; k < 7; k++) {
        const streamId = `cam-${k}`;
        const end = marks.find((m) => m.mark.streamId === streamId && m.mark.state === 'end');
        expect(end, streamId).toBeDefined();
        expect(got.slice(end!.after).some((p) => p.streamId === streamId)).toBe(false);
      }
      const stats = pipeline.stats();
      expect(stats.counters['windows']).toBe(expected.length);
      // Counters come with every batch of predictions, gauges with the last message: both summed over the shards.
      const alone = single.stats();
      for (const key of ['windows', 'events_in_audio', 'events_in_video', 'events_in_text']) {
        expect(alone.counters[key], key).toBeGreaterThan(0);
        expect(stats.counters[key], key).toBe(alone.counters[key]);
      }
      for (const key of ['open_streams', 'buffered_events', 'model_states', 'model_queued_windows']) {
        expect(alone.gauges[key], key).toBeTypeOf('number');
        expect(stats.gauges[key], key).toBe(alone.gauges[key]);
      }
    },
    120_000,
  );

  it('refuses events beyond a shard’s in-flight bound, naming each, and still closes every stream', async () => {
    const pipeline = await sharded(2, 200);
    const inputs = session(3);
    const refusals: InputRefusal[] = [];
    const marks: StreamMark[] = [];
    await new Promise<void>((resolve, reject) =>
      pipeline
        .run(from(inputs), { refused: (r) => refusals.push(r), onStream: (m) => marks.push(m) })
        .subscribe({ error: reject, complete: resolve }),
    );
    // All inputs arrive in one turn: beyond 200 per shard, every event is refused (controls still go through).
    const events = inputs.filter((i) => !('control' in i)).length;
    const backlog = refusals.filter((r) => r.reason === 'shard_backlog');
    expect(backlog.length).toBeGreaterThan(events - 2 * 200 - 1);
    expect(backlog[0]).toMatchObject({
      streamId: expect.any(String),
      seq: expect.any(Number),
      time: expect.any(Number),
    });
    expect(backlog[0]!.message).toMatch(/at most 200/);
    expect(pipeline.stats().counters['shard_rejected_shard_backlog']).toBe(backlog.length);
    expect(
      marks
        .filter((m) => m.state === 'end')
        .map((m) => m.streamId)
        .sort(),
    ).toEqual(['cam-0', 'cam-1', 'cam-2']);
  }, 120_000);

  it('fails at create, naming the shard and the problem, when a shard cannot load its model', async () => {
    const runner = await PredictionPipelineRunner.create({
      model: await loadModel(DEMO_MODEL_DIR),
      backend: 'cpu-fused',
    });
    await expect(
      ShardedPipeline.create(runner, { shards: 2, modelDir: '/nonexistent/model', backend: 'cpu-fused' }),
    ).rejects.toThrow(/shard \d could not start: .*nonexistent/);
  }, 60_000);
});
