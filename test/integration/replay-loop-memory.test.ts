import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, take, tap } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReplayHoldings, replayThroughPipeline } from '../../src/cli/replay-run.js';
import type { AnySourceEvent } from '../../src/core/events.js';
import {
  MODEL_CREDITS,
  PredictionPipelineRunner,
  REPLAY_QUEUE,
} from '../../src/pipeline/prediction-pipeline.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { readPredictions, recordingInfo } from '../../src/record/recording-reader.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';

const dir = mkdtempSync(join(tmpdir(), 'braid-loop-'));
const file = join(dir, 'three.mcap');
const T0 = 1_764_000_000_000_000;

/**
 * 3 s: `steady` all along, `early` only in its first second (it ends while `steady` goes on), `gone` only in its
 * first half second, before the replay's --from. Before streams were closed and forgotten, `gone` held every later
 * prediction back for ever and `early` held back each pass's last two seconds.
 */
async function record(): Promise<void> {
  const recorder = await McapRecorder.create(file);
  const events: AnySourceEvent[] = [];
  const spans = { steady: [0, 300], early: [0, 100], gone: [0, 50] } as const;
  for (const [streamId, [from, to]] of Object.entries(spans))
    for (let tick = from; tick < to; tick++) {
      const samples = new Int16Array(160).map((_, i) => Math.round(5000 * Math.sin((tick * 160 + i) / 7)));
      const time = T0 + tick * 10_000;
      events.push({
        streamId,
        modality: 'audio',
        time,
        seq: tick,
        payload: { sampleRate: 16000, channels: 1, samples },
      });
      if (tick % 10 === 0) {
        const data = new Uint8Array(64 * 48).map((_, i) => (i + tick * 7) & 0xff);
        events.push({
          streamId,
          modality: 'video',
          time,
          seq: tick / 10,
          payload: { format: 'gray', width: 64, height: 48, data },
        });
      }
    }
  events.sort((a, b) => a.time - b.time);
  for (const e of events) await recorder.write(e, e.time);
  await recorder.close();
}

beforeAll(record);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a looped replay holds a bounded number of items, however long it runs', () => {
  it('replays 250 passes with --from, --loop and an MCAP --out: every held count stays under a fixed bound', async () => {
    const pipeline = await PredictionPipelineRunner.create({
      model: untrainedModel(3),
      backend: 'cpu-fused',
      maxQueue: REPLAY_QUEUE,
    });
    const out = join(dir, 'looped.mcap');
    const recorder = await McapRecorder.create(out);
    const run = replayThroughPipeline(file, pipeline, {
      speed: 'max',
      from: 600_000,
      loop: true,
      recorder,
      model: 'untrained@test',
    });
    // Per pass (from 0.6 s): steady 5 windows, early 1. 250 passes make 1 500 predictions, three times the model's
    // credits, so a structure that grew with the passes would pass its bound well before the end.
    const passes = 250;
    const perPass = 6;
    const samples: ReplayHoldings[] = [];
    let n = 0;
    await lastValueFrom(
      run.predictions$.pipe(
        take(passes * perPass),
        tap(() => {
          n += 1;
          if (n % perPass === 0) samples.push(run.holdings());
        }),
      ),
    );
    await recorder.close();

    // Each count has a bound that does not depend on how long the replay runs: a structure that grew with time
    // (a stream never forgotten, a queue never drained) passes it within a few of the 30 passes.
    const bounds: [string, (h: ReplayHoldings) => number, number][] = [
      // The reader runs at most MODEL_CREDITS windows ahead of the slowest stream's output, so that many can wait.
      ['ordered predictions held', (h) => h.orderedHeld, MODEL_CREDITS],
      ['ordered streams (steady and early, never gone)', (h) => h.orderedStreams, 2],
      ['aligner streams', (h) => h.alignerStreams, 2],
      ['aligner events (two windows of two streams)', (h) => h.alignerEvents, 2 * 2 * 55],
      ['model states', (h) => h.modelStates, 2],
      ['model queue', (h) => h.modelQueued, MODEL_CREDITS],
      [
        'windows in flight (credits, plus what one event closes)',
        (h) => h.windowsInFlight,
        MODEL_CREDITS + 2,
      ],
      ['lifecycle streams (open, or closing while open again)', (h) => h.lifecycleStreams, 4],
      ['recorder channels (audio, video, prediction of two streams)', (h) => h.recorderChannels, 6],
      ['credits in use', (h) => Math.max(0, ...Object.values(h.credits)), 4096],
    ];
    expect(samples.length).toBe(passes);
    for (const [name, pick, bound] of bounds)
      expect(Math.max(...samples.map(pick)), name).toBeLessThanOrEqual(bound);

    // What was written: `gone` never (it has nothing after --from), the others every pass, each window once.
    const written = [];
    for await (const p of readPredictions(out)) written.push(p);
    expect(new Set(written.map((p) => p.streamId))).toEqual(new Set(['steady', 'early']));
    const keys = written.map((p) => `${p.streamId}/${p.windowIndex}`);
    expect(new Set(keys).size).toBe(keys.length);
    // A stream back in the next pass goes on in its old channels: the file does not grow a channel per pass.
    const info = await recordingInfo(out);
    expect(
      info.channels
        .filter((c) => c.kind === 'prediction')
        .map((c) => c.streamId)
        .sort(),
    ).toEqual(['early', 'steady']);
  }, 60_000);
});
