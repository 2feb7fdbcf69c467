import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader } from '@mcap/core';
import { lastValueFrom, materialize, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayThroughPipeline } from '../../src/cli/replay-run.js';
import type { AnySourceEvent } from '../../src/core/events.js';
import { predictionLine } from '../../src/pipeline/prediction-order.js';
import { PredictionPipelineRunner, REPLAY_QUEUE } from '../../src/pipeline/prediction-pipeline.js';
import { FileReadable } from '../../src/record/file-io.js';
import { McapRecorder, RecordingError } from '../../src/record/index.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';

/**
 * `braid replay` of a file damaged part-way: what was read before the damage is put out in full and the same on
 * every run — not whichever predictions happened to leave the model before the reader's error overtook them.
 */

const T0 = 1_700_000_000_000_000;
let dir: string;
let intact: string;
let damaged: string;

function audio(streamId: string, i: number): AnySourceEvent {
  const samples = Int16Array.from({ length: 160 }, (_, k) =>
    Math.round(4000 * Math.sin(((i * 160 + k) * (300 + (i % 50))) / 16000)),
  );
  return {
    streamId,
    modality: 'audio',
    time: T0 + i * 10_000,
    seq: i,
    payload: { sampleRate: 16000, channels: 1, samples },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'braid-replay-damaged-'));
  intact = join(dir, 'intact.mcap');
  damaged = join(dir, 'damaged.mcap');
  // Two streams of 20 s, in many small chunks.
  const recorder = await McapRecorder.create(intact, { chunkBytes: 16 * 1024 });
  for (let i = 0; i < 2000; i++)
    for (const id of ['a', 'b']) await recorder.write(audio(id, i), T0 + i * 10_000);
  await recorder.close();
  const bytes = Buffer.from(readFileSync(intact));
  const readable = await FileReadable.open(intact);
  const index = await McapIndexedReader.Initialize({ readable });
  await readable.close();
  // Scramble the middle of the middle chunk: it fails decompression or its CRC.
  const chunk = index.chunkIndexes[Math.floor(index.chunkIndexes.length / 2)]!;
  const middle = Number(chunk.chunkStartOffset + chunk.chunkLength / 2n);
  for (let i = 0; i < 16; i++) bytes[middle + i] = bytes[middle + i]! ^ 0x5a;
  writeFileSync(damaged, bytes);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function replay(file: string) {
  const pipeline = await PredictionPipelineRunner.create({
    model: untrainedModel(5),
    backend: 'cpu-fused',
    maxQueue: REPLAY_QUEUE,
  });
  const notes = await lastValueFrom(
    replayThroughPipeline(file, pipeline, { speed: 'max' }).predictions$.pipe(materialize(), toArray()),
  );
  const lines = notes.filter((n) => n.kind === 'N').map((n) => predictionLine(n.value!));
  const failure = notes.find((n) => n.kind === 'E')?.error;
  return { lines, failure };
}

describe('replaying a damaged recording', () => {
  it('puts out every window read before the damage, the same each run, then fails with the RecordingError', async () => {
    const whole = await replay(intact);
    expect(whole.failure).toBeUndefined();
    const first = await replay(damaged);
    const second = await replay(damaged);
    expect(first.failure).toBeInstanceOf(RecordingError);
    expect((first.failure as Error).message).toMatch(/damaged file\?/);
    expect(second.lines).toEqual(first.lines);
    // Every window that ends by the last message read before the damage is the intact file's; then each stream's
    // window at the cut, flushed.
    const readTo = Number(/past log time (\d+) µs/.exec((first.failure as Error).message)?.[1]);
    const before = whole.lines.filter((line) => JSON.parse(line).windowEnd <= readTo);
    expect(before.length).toBeGreaterThan(whole.lines.length / 4);
    expect(before.length).toBeLessThan(whole.lines.length);
    expect(first.lines.slice(0, before.length)).toEqual(before);
    expect(first.lines.length - before.length).toBeLessThanOrEqual(2);
  });
});
