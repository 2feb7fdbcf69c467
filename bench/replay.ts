// End-to-end replay at --speed max (read MCAP, decode, align, features, GRU, ordered output) as multiples of real
// time, for 1 and 64 streams stored as the demo page sends them (16 kHz PCM16 in 10 ms frames, raw gray 64x48 video
// at 10 fps, text). Baseline in the same run: reading the same file without the pipeline. Run: npx tsx bench/replay.ts
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, tap } from 'rxjs';
import { replayThroughPipeline } from '../src/cli/replay-run.js';
import type { AnySourceEvent } from '../src/core/events.js';
import { loadModel } from '../src/model/model-io.js';
import { predictionLine } from '../src/pipeline/prediction-order.js';
import { PredictionPipelineRunner, REPLAY_QUEUE } from '../src/pipeline/prediction-pipeline.js';
import { McapRecorder } from '../src/record/recorder.js';
import { readRecording } from '../src/record/recording-reader.js';
import { untrainedModel } from '../test/helpers/demo-pipeline.js';

async function makeRecording(path: string, streams: number, seconds: number): Promise<void> {
  const recorder = await McapRecorder.create(path, { overwrite: true });
  const t0 = 1_764_000_000_000_000;
  let phase = 1;
  for (let tick = 0; tick < seconds * 100; tick++) {
    const writes: Promise<void>[] = [];
    for (let s = 0; s < streams; s++) {
      const streamId = `stream-${s}`;
      const time = t0 + tick * 10_000;
      const pcm = new Int16Array(160);
      for (let i = 0; i < 160; i++) pcm[i] = Math.round(6000 * Math.sin((phase++ * (300 + s)) / 16000));
      writes.push(
        recorder.write({
          streamId,
          modality: 'audio',
          time,
          seq: tick,
          payload: { sampleRate: 16000, channels: 1, samples: pcm },
        }),
      );
      if (tick % 10 === 0) {
        const data = new Uint8Array(64 * 48);
        for (let i = 0; i < data.length; i++) data[i] = (i + tick + s) & 255;
        writes.push(
          recorder.write({
            streamId,
            modality: 'video',
            time,
            seq: tick / 10,
            payload: { format: 'gray', width: 64, height: 48, data },
          }),
        );
      }
      if (tick % 170 === 3)
        writes.push(
          recorder.write({
            streamId,
            modality: 'text',
            time,
            seq: tick,
            payload: { text: 'hello there, how are you' },
          }),
        );
    }
    await Promise.all(writes);
  }
  await recorder.close();
}

async function replayOnce(
  pipeline: PredictionPipelineRunner,
  path: string,
  _streams: number,
): Promise<{ ms: number; predictions: number; bytes: number }> {
  let predictions = 0;
  let bytes = 0;
  const start = performance.now();
  await lastValueFrom(
    replayThroughPipeline(path, pipeline, { speed: 'max' }).predictions$.pipe(
      tap((p) => {
        predictions++;
        bytes += predictionLine(p).length;
      }),
    ),
    { defaultValue: undefined },
  );
  return { ms: performance.now() - start, predictions, bytes };
}

async function readOnly(path: string): Promise<number> {
  const start = performance.now();
  let n = 0;
  for await (const _e of readRecording(path) as AsyncIterable<AnySourceEvent>) n++;
  if (n === 0) throw new Error(`${path} holds no events`);
  return performance.now() - start;
}

const dir = mkdtempSync(join(tmpdir(), 'braid-bench-replay-'));
const model = existsSync('models/demo') ? await loadModel('models/demo') : untrainedModel();
const modelName = existsSync('models/demo') ? 'models/demo' : 'untrained demo-shaped model';
console.log(`model: ${modelName} (hidden ${model.config.hidden}), backend cpu-fused\n`);
console.log(
  '| streams | recorded s | replay wall s | × real time (stream-seconds / wall s) | predictions | read-only baseline s |',
);
console.log('|---|---|---|---|---|---|');
for (const [streams, seconds] of [
  [1, 120],
  [64, 10],
] as const) {
  const path = join(dir, `s${streams}.mcap`);
  await makeRecording(path, streams, seconds);
  const pipeline = await PredictionPipelineRunner.create({
    model,
    backend: 'cpu-fused',
    maxQueue: REPLAY_QUEUE,
  });
  await replayOnce(pipeline, path, streams); // warm-up
  const runs = [await replayOnce(pipeline, path, streams), await replayOnce(pipeline, path, streams)];
  const best = Math.min(...runs.map((r) => r.ms));
  const base = Math.min(await readOnly(path), await readOnly(path));
  const counters = pipeline.stats().counters;
  if ((counters['model_dropped_queue_full'] ?? 0) > 0)
    throw new Error(`replay dropped windows: ${JSON.stringify(counters)}`);
  console.log(
    `| ${streams} | ${seconds} | ${(best / 1000).toFixed(3)} | ${((streams * seconds) / (best / 1000)).toFixed(0)}× | ${runs[0]!.predictions} | ${(base / 1000).toFixed(3)} |`,
  );
}
