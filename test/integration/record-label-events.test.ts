import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Prediction } from '../../src/core/window.js';
import type { LabelEvent } from '../../src/events/event-tracker.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { RecordingReader, recordingInfo } from '../../src/record/recording-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'braid-label-events-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000_000;
const prediction = (streamId: string, i: number): Prediction => ({
  streamId,
  windowIndex: i,
  windowStart: T0 + i * 500_000,
  windowEnd: T0 + (i + 1) * 500_000,
  scores: { speech: i % 2 ? 0.9 : 0.1 },
  present: { audio: true, video: false, text: false, label: false },
});
const events: LabelEvent[] = [
  { streamId: 'a', label: 'speech', state: 'on', time: T0 + 500_000, score: 0.9, windowIndex: 1 },
  { streamId: 'b', label: 'speech', state: 'on', time: T0 + 500_000, score: 0.75, windowIndex: 1 },
  { streamId: 'a', label: 'speech', state: 'off', time: T0 + 1_000_000, score: 0.1, windowIndex: 2 },
  {
    streamId: 'b',
    label: 'speech',
    state: 'off',
    time: T0 + 1_500_000,
    score: 0.75,
    windowIndex: 2,
    closed: true,
  },
];

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('recording label events', () => {
  it.each(['protobuf', 'json'] as const)(
    'writes them on /<stream>/events (%s) and reads them back exactly, with the model; info counts them',
    async (encoding) => {
      const path = join(dir, `events-${encoding}.mcap`);
      const recorder = await McapRecorder.create(path, { encoding });
      for (const s of ['a', 'b'])
        for (let i = 0; i < 3; i++) await recorder.writePrediction(prediction(s, i), { model: 'm@1' });
      for (const e of events) await recorder.writeLabelEvent(e, { model: 'm@1', receiveTime: e.time });
      await recorder.releaseStream('a', 'label_event');
      expect(recorder.stats.labelEvents).toBe(4);
      await recorder.close();

      const reader = await RecordingReader.open(path);
      try {
        const back = await collect(reader.labelEvents());
        // In time order, then by channel.
        expect(back).toEqual(
          [events[0], events[1], events[2], events[3]].map((e) => ({ ...e, model: 'm@1' })),
        );
        expect(await collect(reader.labelEvents({ streams: ['b'] }))).toHaveLength(2);
        expect(await collect(reader.predictions())).toHaveLength(6);
      } finally {
        await reader.close();
      }
      const info = await recordingInfo(path);
      expect(info.streams.map((s) => [s.streamId, s.predictions, s.labelEvents])).toEqual([
        ['a', 3, 2],
        ['b', 3, 2],
      ]);
      const channels = info.channels.filter((c) => c.kind === 'label_event');
      expect(channels.map((c) => [c.topic, c.schema, c.model, c.messages])).toEqual([
        ['/a/events', 'braid.LabelEvent', 'm@1', 2],
        ['/b/events', 'braid.LabelEvent', 'm@1', 2],
      ]);
      expect(info.warnings).toEqual([]);
    },
  );

  it('refuses an event it cannot carry, naming the field, and counts it', async () => {
    const recorder = await McapRecorder.create(join(dir, 'bad.mcap'));
    await expect(recorder.writeLabelEvent({ ...events[0]!, score: Number.NaN })).rejects.toThrow(
      /braid.LabelEvent/,
    );
    await expect(recorder.writeLabelEvent({ ...events[0]!, time: 1.5 })).rejects.toThrow(/time/);
    expect(recorder.stats.rejected['bad_label_event']).toBe(2);
    await recorder.close();
  });
});
