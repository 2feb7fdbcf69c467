import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, map, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { replayThroughPipeline } from '../../src/cli/replay-run.js';
import type { AnySourceEvent } from '../../src/core/events.js';
import { predictionLine } from '../../src/pipeline/prediction-order.js';
import { PredictionPipelineRunner, REPLAY_QUEUE } from '../../src/pipeline/prediction-pipeline.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { readPredictions, readRecording, recordingInfo } from '../../src/record/recording-reader.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { eventDigest } from '../helpers/event-digest.js';

/** Written by the recorder of 755273a (format version 1, JSON): see test/fixtures/recording-v1/README.md. */
const FIXTURE = 'test/fixtures/recording-v1/recording-v1.mcap';
/** What the reader of that commit made of the fixture's 668 events (eventDigest), pinned when it was written. */
const V1_EVENTS_DIGEST = 'd7dc7fb089fef9d9707cce6f3b1fed1201cf1228281a9efb30837513c489255d';
const T0 = 1_764_000_000_000_000;

const dir = mkdtempSync(join(tmpdir(), 'braid-v1-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const collect = async <T>(items: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
};

async function replayLines(file: string): Promise<string> {
  const pipeline = await PredictionPipelineRunner.create({
    model: untrainedModel(11),
    backend: 'cpu-fused',
    maxQueue: REPLAY_QUEUE,
  });
  const lines = await lastValueFrom(
    replayThroughPipeline(file, pipeline, { speed: 'max' }).predictions$.pipe(map(predictionLine), toArray()),
  );
  return lines.join('');
}

describe('a format version 1 (JSON) recording, written by an older braid', () => {
  it('reads as it always did: the same events, digest pinned when it was written, and its predictions', async () => {
    const info = await recordingInfo(FIXTURE);
    expect(info.metadata).toMatchObject({ formatVersion: '1', fixture: 'recording-v1' });
    expect(info.streams.map((s) => [s.streamId, s.messages, s.predictions])).toEqual([
      ['jpeg', { audio: 200, video: 20, text: 3 }, 0],
      ['png', { audio: 200, video: 20 }, 0],
      ['raw', { audio: 200, video: 20, text: 3, label: 2 }, 4],
    ]);
    expect(info.channels.every((c) => c.messageEncoding === 'json')).toBe(true);
    const events = await collect(readRecording(FIXTURE));
    expect(events).toHaveLength(668);
    expect(eventDigest(events)).toBe(V1_EVENTS_DIGEST);
    const predictions = await collect(readPredictions(FIXTURE));
    expect(predictions.map((p) => [p.windowStart - T0, p.scores.speech, p.present.text])).toEqual([
      [0, 0, false],
      [500_000, 0.25, true],
      [1_000_000, 0.5, false],
      [1_500_000, 0.75, false],
    ]);
    expect(predictions.every((p) => p.model === undefined && p.scores.motion === 1 / 3)).toBe(true);
  });

  it('replays byte-identically to the same events recorded in the new binary encoding', async () => {
    const copy = join(dir, 'v2.mcap');
    const recorder = await McapRecorder.create(copy);
    const events: AnySourceEvent[] = await collect(readRecording(FIXTURE));
    for (const e of events) await recorder.write(e, e.time);
    await recorder.close();
    const info = await recordingInfo(copy);
    expect(info.metadata).toMatchObject({ formatVersion: '2', encoding: 'protobuf' });
    expect(eventDigest(await collect(readRecording(copy)))).toBe(V1_EVENTS_DIGEST);
    const [old, binary] = [await replayLines(FIXTURE), await replayLines(copy)];
    // Three 2 s streams in 500 ms windows: 4 or 5 windows each, JPEG and PNG frames decoded on the way.
    expect(old.trim().split('\n').length).toBeGreaterThanOrEqual(12);
    expect(binary).toBe(old);
  }, 60_000);
});
