import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader } from '@mcap/core';
import { protobufFromBinaryDescriptor } from '@mcap/support';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/model/model-io.js';
import { loadDecompress } from '../../src/record/decompress.js';
import { FileReadable } from '../../src/record/file-io.js';
import { McapRecorder } from '../../src/record/recorder.js';

const dir = mkdtempSync(join(tmpdir(), 'braid-foxglove-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Layout {
  configById: Record<string, Record<string, unknown>>;
}

/** A recording of the `demo` stream as `braid serve --demo --record` writes it: every modality and predictions. */
async function demoRecording(labels: readonly string[]): Promise<string> {
  const path = join(dir, 'demo.mcap');
  const recorder = await McapRecorder.create(path);
  const t0 = 1_764_000_000_000_000;
  for (let i = 0; i < 100; i++) {
    const time = t0 + i * 10_000;
    const samples = new Int16Array(160).map((_, k) => k * 10);
    await recorder.write({
      streamId: 'demo',
      modality: 'audio',
      time,
      seq: i,
      payload: { sampleRate: 16000, channels: 1, samples },
    });
    if (i % 10 === 0)
      await recorder.write({
        streamId: 'demo',
        modality: 'video',
        time,
        seq: i,
        payload: { format: 'gray', width: 64, height: 48, data: new Uint8Array(64 * 48).fill(i) },
      });
  }
  await recorder.write({
    streamId: 'demo',
    modality: 'text',
    time: t0 + 300_000,
    seq: 0,
    payload: { text: 'hello' },
  });
  await recorder.writePrediction(
    {
      streamId: 'demo',
      windowIndex: 1,
      windowStart: t0,
      windowEnd: t0 + 500_000,
      scores: Object.fromEntries(labels.map((l, k) => [l, k / 10])),
      present: { audio: true, video: true, text: true, label: false },
    },
    { model: 'demo@test' },
  );
  await recorder.close();
  return path;
}

describe('examples/foxglove-layout.json', () => {
  it("names topics a braid recording has, with the schemas each Foxglove panel reads, and plots every label's score", async () => {
    const layout = JSON.parse(readFileSync('examples/foxglove-layout.json', 'utf8')) as Layout;
    const { labels } = (await loadModel('models/demo')).config;
    const path = await demoRecording(labels);
    const readable = await FileReadable.open(path);
    const reader = await McapIndexedReader.Initialize({
      readable,
      decompressHandlers: await loadDecompress(),
    });
    const schemaOf = (topic: string) => {
      const channel = [...reader.channelsById.values()].find((c) => c.topic === topic);
      return channel && reader.schemasById.get(channel.schemaId);
    };
    const config = (type: string) =>
      Object.entries(layout.configById).find(([id]) => id.startsWith(`${type}!`))?.[1] ?? {};
    expect(schemaOf((config('Image')['imageMode'] as { imageTopic: string }).imageTopic)?.name).toBe(
      'foxglove.RawImage',
    );
    expect(schemaOf(config('Audio')['topic'] as string)?.name).toBe('foxglove.RawAudio');
    expect(schemaOf(config('RosOut')['topicToRender'] as string)?.name).toBe('foxglove.Log');
    expect(schemaOf(config('RawMessages')['topicPath'] as string)?.name).toBe('braid.Prediction');

    // Each plot path, evaluated on a prediction decoded with nothing but the file's own schema (as Foxglove does).
    const paths = (config('Plot')['paths'] as { value: string; label: string }[]).map((p) => {
      const m = /^(\/[^.]+)\.scores\[:\]\{key=="([^"]+)"\}\.value$/.exec(p.value);
      expect(m, p.value).not.toBeNull();
      return { topic: m![1]!, key: m![2]!, label: p.label };
    });
    expect(paths.map((p) => p.key)).toEqual([...labels]);
    const schema = schemaOf(paths[0]!.topic)!;
    const type = protobufFromBinaryDescriptor(schema.data).lookupType(schema.name);
    const message = (await reader.readMessages({ topics: [paths[0]!.topic] }).next()).value;
    const decoded = type.toObject(type.decode(message!.data)) as { scores: { key: string; value: number }[] };
    for (const [k, p] of paths.entries())
      expect(decoded.scores.filter((s) => s.key === p.key).map((s) => s.value)).toEqual([k / 10]);
    await readable.close();
  });
});
