import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/events.js';
import { saveModel } from '../../src/model/model-io.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { readPredictions, readRecording, recordingInfo } from '../../src/record/recording-reader.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'braid-diff-'));
const input = join(dir, 'session.mcap');
const [modelA, modelB] = [join(dir, 'model-a'), join(dir, 'model-b')];

const braid = async (...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> => {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args]);
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
};

const collect = async <T>(items: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
};

beforeAll(async () => {
  await saveModel(untrainedModel(3), modelA);
  await saveModel(untrainedModel(4), modelB);
  const recorder = await McapRecorder.create(input);
  const events: AnySourceEvent[] = [];
  for (const [k, streamId] of ['left', 'right'].entries())
    for (let tick = 0; tick < 300; tick++) {
      const time = 1_764_000_000_000_000 + tick * 10_000;
      const samples = new Int16Array(160).map((_, i) =>
        Math.round(4000 * Math.sin((tick * 160 + i) / (5 + k))),
      );
      events.push({
        streamId,
        modality: 'audio',
        time,
        seq: tick,
        payload: { sampleRate: 16000, channels: 1, samples },
      });
      if (tick % 90 === 10 + k)
        events.push({ streamId, modality: 'text', time, seq: tick, payload: { text: `t${tick}` } });
    }
  for (const e of events.sort((a, b) => a.time - b.time)) await recorder.write(e, e.time);
  await recorder.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('braid replay --out FILE.mcap and braid diff', () => {
  it('records the inputs with the new predictions; two speeds diff identical, another model differs', async () => {
    const [a1, a4, b] = ['a1.mcap', 'a4.mcap', 'b.mcap'].map((f) => join(dir, f)) as [string, string, string];
    expect((await braid('replay', input, '--model', modelA, '--out', a1)).code).toBe(0);
    expect((await braid('replay', input, '--model', modelA, '--speed', '4', '--out', a4)).code).toBe(0);
    expect((await braid('replay', input, '--model', modelB, '--out', b)).code).toBe(0);

    // The inputs are all there (text with its foxglove.Log view), with one prediction channel per stream.
    expect(await collect(readRecording(a1))).toEqual(await collect(readRecording(input)));
    const info = await recordingInfo(a1);
    const channels = info.channels.filter((c) => c.kind === 'prediction');
    expect(channels.map((c) => c.topic).sort()).toEqual(['/left/prediction', '/right/prediction']);
    expect(channels.every((c) => /^model-a@[0-9a-f]{12}$/.test(c.model ?? ''))).toBe(true);
    expect(info.metadata).toMatchObject({ replayOf: input, model: channels[0]?.model });
    const predictions = await collect(readPredictions(a1));
    // 3 s of two streams in 500 ms windows: 6 or 7 windows each.
    expect(predictions.length).toBeGreaterThanOrEqual(12);

    const same = await braid('diff', a1, a4);
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(new RegExp(`identical: ${predictions.length} windows the same, 0 differ`));
    const other = await braid('diff', a1, b, '--limit', '2');
    expect(other.code).toBe(1);
    expect(other.stdout).toMatch(/differ: 0 windows the same, \d+ differ, 0 only in A, 0 only in B/);
    expect(other.stdout).toMatch(/left: 0 same, \d+ differ.*max \|Δscore\| speech \d/);
    expect(other.stdout).toMatch(/left window \d+ \(ends [\d.]+ s\): speech [\d.]+ → [\d.]+/);
    expect(other.stdout).toMatch(/\.\.\. \d+ more/);

    const info1 = await braid('info', a1);
    expect(info1.stdout).toMatch(/prediction channels:\n/);
    expect(info1.stdout).toMatch(/ {4}\/left\/prediction: \d+ predictions, model model-a@[0-9a-f]{12}/);
    // An existing recording is not overwritten by mistake: a usage error naming the option.
    const again = await braid('replay', input, '--model', modelA, '--out', a1);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(
      /option "out": .*the file exists \(--overwrite, or the option overwrite, replaces it\)/,
    );
  }, 180_000);
});
