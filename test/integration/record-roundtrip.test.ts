import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasMcapPrefix, McapIndexedReader } from '@mcap/core';
import { protobufFromBinaryDescriptor } from '@mcap/support';
import { from, interval, lastValueFrom, map, take, tap, toArray } from 'rxjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AnySourceEvent, InvalidOptionError } from '../../src/core/index.js';
import { loadDecompress } from '../../src/record/decompress.js';
import { FileReadable } from '../../src/record/file-io.js';
import {
  McapRecorder,
  RecordingError,
  RecordingReader,
  type RecordingWarning,
  readPredictions,
  readRecording,
  recordingInfo,
  recordTo,
  WriteBacklogError,
} from '../../src/record/index.js';

const T0 = 1_700_000_000_000_000;
let dir: string;
let jpeg: Uint8Array;
let png: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'braid-record-'));
  const image = sharp({
    create: { width: 16, height: 12, channels: 3, background: { r: 200, g: 40, b: 90 } },
  });
  jpeg = new Uint8Array(await image.clone().jpeg().toBuffer());
  png = new Uint8Array(await image.clone().png().toBuffer());
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string) => join(dir, name);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * One stream of every modality over `ms` milliseconds, in arrival order: video frames arrive 40 ms after their
 * capture time, so the file's write order is not its time order.
 */
function streamEvents(streamId: string, ms: number, offset = 0): AnySourceEvent[] {
  const arrivals: { at: number; event: AnySourceEvent }[] = [];
  for (let i = 0; i * 10 < ms; i += 1) {
    const time = T0 + offset + i * 10_000;
    const samples = Int16Array.from({ length: 160 }, (_, k) => (((i * 160 + k) * 37) % 65536) - 32768);
    arrivals.push({
      at: time,
      event: {
        streamId,
        modality: 'audio',
        time,
        seq: i,
        payload: { sampleRate: 16000, channels: 1, samples },
      },
    });
  }
  for (let i = 0; i * 100 < ms; i += 1) {
    const time = T0 + offset + i * 100_000 + 3;
    const kind = i % 4;
    const payload =
      kind === 0
        ? {
            format: 'gray' as const,
            width: 8,
            height: 6,
            data: Uint8Array.from({ length: 48 }, (_, k) => (k * 5 + i) % 256),
          }
        : kind === 1
          ? {
              format: 'rgb' as const,
              width: 4,
              height: 2,
              data: Uint8Array.from({ length: 24 }, (_, k) => (k * 11 + i) % 256),
            }
          : kind === 2
            ? { format: 'jpeg' as const, data: jpeg }
            : { format: 'png' as const, data: png };
    arrivals.push({ at: time + 40_000, event: { streamId, modality: 'video', time, seq: i, payload } });
  }
  for (let i = 0; i * 250 < ms; i += 1) {
    const time = T0 + offset + i * 250_000;
    arrivals.push({
      at: time,
      event: { streamId, modality: 'text', time, seq: i, payload: { text: `${streamId} says ${i} ✓` } },
    });
    arrivals.push({
      at: time,
      event: {
        streamId,
        modality: 'label',
        time,
        seq: i,
        payload: { labels: { speech: i % 2, music: 0.25 } },
      },
    });
  }
  return arrivals.sort((a, b) => a.at - b.at).map((a) => a.event);
}

const interleave = (...lists: AnySourceEvent[][]): AnySourceEvent[] =>
  lists.flat().sort((a, b) => a.time - b.time);

const canonical = (events: readonly AnySourceEvent[]) =>
  [...events].sort((a, b) =>
    a.streamId !== b.streamId
      ? a.streamId < b.streamId
        ? -1
        : 1
      : a.modality !== b.modality
        ? a.modality < b.modality
          ? -1
          : 1
        : a.seq - b.seq,
  );

async function record(name: string, events: readonly AnySourceEvent[], options = {}): Promise<string> {
  const path = file(name);
  const recorder = await McapRecorder.create(path, { chunkBytes: 8 * 1024, ...options });
  for (const e of events) void recorder.write(e, e.time + 500);
  await recorder.close();
  return path;
}

describe('McapRecorder → readRecording round trip', () => {
  let written: AnySourceEvent[];
  let path: string;

  beforeAll(async () => {
    written = interleave(streamEvents('alpha', 2000), streamEvents('beta', 2000, 1));
    path = await record('two-streams.mcap', written);
  });

  it('gives back every event of every modality bit-exactly, time and seq included', async () => {
    const read = await collect(readRecording(path));
    expect(read).toHaveLength(written.length);
    expect(canonical(read)).toEqual(canonical(written));
    expect(read.filter((e) => e.modality === 'video' && e.payload.format === 'jpeg')[0]?.payload).toEqual({
      format: 'jpeg',
      data: jpeg,
    });
  });

  it('reads in (time, channel, seq) order, the same on every read, whatever the write order', async () => {
    const reader = await RecordingReader.open(path);
    const channelOf = new Map(
      reader.info.channels.map((c) => [`${c.streamId}/${c.modality}/${c.schema}`, c.id]),
    );
    const schemaOf = (e: AnySourceEvent) =>
      e.modality === 'audio'
        ? 'foxglove.RawAudio'
        : e.modality === 'text'
          ? 'braid.Text'
          : e.modality === 'label'
            ? 'braid.Labels'
            : e.payload.format === 'jpeg' || e.payload.format === 'png'
              ? 'foxglove.CompressedImage'
              : 'foxglove.RawImage';
    const key = (e: AnySourceEvent) => [
      e.time,
      channelOf.get(`${e.streamId}/${e.modality}/${schemaOf(e)}`)!,
      e.seq,
    ];
    const first = await collect(reader.events());
    const second = await collect(reader.events());
    await reader.close();
    expect(second).toEqual(first);
    for (let i = 1; i < first.length; i += 1) {
      const [a, b] = [key(first[i - 1]!), key(first[i]!)];
      const cmp = a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
      expect(cmp, `events ${i - 1} and ${i} out of order`).toBeLessThan(0);
    }
    // Ties exist (text and label share times), so the channel tie-break was exercised.
    expect(first.some((e, i) => i > 0 && e.time === first[i - 1]!.time)).toBe(true);
  });

  it('breaks equal times by channel, then seq, not by write order', async () => {
    const text = (streamId: string, time: number, seq: number): AnySourceEvent => ({
      streamId,
      modality: 'text',
      time,
      seq,
      payload: { text: `${streamId}${seq}` },
    });
    // Channel a is registered first; afterwards b's events and the higher seq are written first.
    const writes = [
      text('a', T0, 0),
      text('b', T0, 0),
      text('b', T0 + 10, 1),
      text('a', T0 + 10, 2),
      text('a', T0 + 10, 1),
    ];
    const tied = await record('ties.mcap', writes);
    const read = (await collect(readRecording(tied))).map((e) => e.payload);
    expect(read).toEqual(['a0', 'b0', 'a1', 'a2', 'b1'].map((t) => ({ text: t })));
    const cut = file('ties-nofooter.mcap');
    writeFileSync(cut, readFileSync(tied).subarray(0, -30));
    const fallback = (await collect(readRecording(cut, { onWarning: () => {} }))).map((e) => e.payload);
    expect(fallback).toEqual(read);
  });

  it('describes the recording: streams, modalities, counts, times, schemas, metadata', async () => {
    const info = await recordingInfo(path);
    expect(info).toMatchObject({
      complete: true,
      profile: 'braid',
      metadata: { formatVersion: '2', encoding: 'protobuf' },
      startTime: T0,
      endTime: Math.max(...written.map((e) => e.time)),
      // Every text event is also on its stream's foxglove.Log view.
      messages: written.length + written.filter((e) => e.modality === 'text').length,
      warnings: [],
    });
    const views = info.channels.filter((c) => c.schema === 'foxglove.Log');
    expect(views.map((c) => c.topic)).toEqual(['/alpha/log', '/beta/log']);
    expect(views[0]?.skipped).toMatch(/view of the stream's text, for Foxglove/);
    expect(info.duration).toBe(info.endTime! - info.startTime!);
    expect(info.streams.map((s) => s.streamId)).toEqual(['alpha', 'beta']);
    expect(info.streams[0]).toEqual({
      streamId: 'alpha',
      modalities: ['audio', 'label', 'text', 'video'],
      messages: { audio: 200, video: 20, text: 8, label: 8 },
      predictions: 0,
      labelEvents: 0,
    });
    // Counts in name order whatever order the channels were made in (`braid info` prints them so).
    expect(Object.keys(info.streams[0]!.messages)).toEqual(['audio', 'label', 'text', 'video']);
    expect(info.schemas).toEqual([
      'braid.Labels',
      'braid.Text',
      'foxglove.CompressedImage',
      'foxglove.Log',
      'foxglove.RawAudio',
      'foxglove.RawImage',
    ]);
  });

  it('seeks with from/to (µs after the first message, half-open) through the index', async () => {
    const all = await collect(readRecording(path));
    const ranges: [number | undefined, number | undefined][] = [
      [0, 1],
      [1_000_000, undefined],
      [undefined, 500_000],
      [250_000, 250_004],
      [1_234_567, 1_734_567],
      [0, 10_000_000],
    ];
    for (const [fromUs, toUs] of ranges) {
      const expected = all.filter(
        (e) => (fromUs === undefined || e.time - T0 >= fromUs) && (toUs === undefined || e.time - T0 < toUs),
      );
      const got = await collect(readRecording(path, { from: fromUs, to: toUs }));
      expect(got, `range [${fromUs}, ${toUs})`).toEqual(expected);
    }
  });

  it('filters streams and names the streams it has when asked for one it has not', async () => {
    const beta = await collect(readRecording(path, { streams: ['beta'] }));
    expect(canonical(beta)).toEqual(canonical(written.filter((e) => e.streamId === 'beta')));
    const error = await collect(readRecording(path, { streams: ['beta', 'gamma'] })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecordingError);
    expect((error as RecordingError).code).toBe('BRAID_ERR_RECORDING');
    expect((error as Error).message).toMatch(/no stream "gamma".*it has "alpha", "beta"/);
  });

  it('reads the same events in the same order record by record when the summary is gone', async () => {
    const full = readFileSync(path);
    const cut = file('two-streams-nofooter.mcap');
    // Drop the footer and magic: every chunk is still whole, only the index is unusable.
    writeFileSync(cut, full.subarray(0, full.length - 30));
    const warnings: RecordingWarning[] = [];
    const fallback = await collect(readRecording(cut, { onWarning: (w) => warnings.push(w) }));
    expect(fallback).toEqual(await collect(readRecording(path)));
    expect(warnings.map((w) => w.code)).toEqual(['truncated']);
    const ranged = await collect(readRecording(cut, { from: 700_000, to: 900_000, onWarning: () => {} }));
    expect(ranged).toEqual(await collect(readRecording(path, { from: 700_000, to: 900_000 })));
  });

  it('writes what Foxglove expects: protobuf messages and FileDescriptorSet schemas, ns times, seq as sequence, zstd chunks', async () => {
    const readable = await FileReadable.open(path);
    try {
      const reader = await McapIndexedReader.Initialize({
        readable,
        decompressHandlers: await loadDecompress(),
      });
      expect(new Set(reader.chunkIndexes.map((c) => c.compression))).toEqual(new Set(['zstd']));
      const audio = [...reader.channelsById.values()].find((c) => c.topic === '/alpha/audio')!;
      expect(audio.messageEncoding).toBe('protobuf');
      const schema = reader.schemasById.get(audio.schemaId)!;
      expect(schema).toMatchObject({ name: 'foxglove.RawAudio', encoding: 'protobuf' });
      const first = await reader.readMessages({ topics: ['/alpha/audio'] }).next();
      expect(first.value).toMatchObject({
        logTime: BigInt(T0) * 1000n,
        publishTime: BigInt(T0 + 500) * 1000n,
      });
      // Decoded with nothing but the file's own schema, as Foxglove does.
      const type = protobufFromBinaryDescriptor(schema.data).lookupType('foxglove.RawAudio');
      const message = type.toObject(type.decode(first.value!.data), { longs: Number }) as Record<
        string,
        unknown
      >;
      expect(message).toMatchObject({
        timestamp: { seconds: T0 / 1e6 },
        format: 'pcm-s16',
        sample_rate: 16000,
        number_of_channels: 1,
      });
      const log = [...reader.channelsById.values()].find((c) => c.topic === '/alpha/log')!;
      expect(Object.fromEntries(log.metadata)).toEqual({
        'braid.streamId': 'alpha',
        'braid.kind': 'view',
        'braid.modality': 'text',
      });
      expect(reader.schemasById.get(log.schemaId)?.name).toBe('foxglove.Log');
    } finally {
      await readable.close();
    }
  });

  it('writes JSON as format version 1 did when asked (encoding json), and reads it back the same', async () => {
    const jsonPath = await record('two-streams-json.mcap', written, { encoding: 'json' });
    expect(await collect(readRecording(jsonPath))).toEqual(await collect(readRecording(path)));
    const readable = await FileReadable.open(jsonPath);
    try {
      const reader = await McapIndexedReader.Initialize({
        readable,
        decompressHandlers: await loadDecompress(),
      });
      expect(reader.chunkIndexes.length).toBeGreaterThan(5);
      expect(new Set(reader.chunkIndexes.map((c) => c.compression))).toEqual(new Set(['zstd']));
      const audio = [...reader.channelsById.values()].find((c) => c.topic === '/alpha/audio')!;
      expect(audio.messageEncoding).toBe('json');
      expect(reader.schemasById.get(audio.schemaId)?.encoding).toBe('jsonschema');
      expect(Object.fromEntries(audio.metadata)).toEqual({
        'braid.streamId': 'alpha',
        'braid.kind': 'event',
        'braid.modality': 'audio',
      });
      expect(reader.schemasById.get(audio.schemaId)).toMatchObject({
        name: 'foxglove.RawAudio',
        encoding: 'jsonschema',
      });
      const first = await reader.readMessages({ topics: ['/alpha/audio'] }).next();
      expect(first.value).toMatchObject({
        logTime: BigInt(T0) * 1000n,
        publishTime: BigInt(T0 + 500) * 1000n,
        sequence: 0,
      });
      expect(JSON.parse(Buffer.from(first.value!.data).toString()).timestamp).toEqual({
        sec: T0 / 1e6,
        nsec: 0,
      });
    } finally {
      await readable.close();
    }
  });
});

describe('McapRecorder.releaseStream', () => {
  it('frees what it keeps per stream when the stream closes, and a stream back goes on in its old channel', async () => {
    const path = file('many-streams.mcap');
    const recorder = await McapRecorder.create(path);
    const text = (streamId: string, time: number): AnySourceEvent => ({
      streamId,
      modality: 'text',
      time,
      seq: 0,
      payload: { text: streamId },
    });
    // A page load per stream, as the demo page does: 300 streams, each closed after its event.
    for (let i = 0; i < 300; i++) {
      await recorder.write(text(`page-${i}`, T0 + i));
      await recorder.writePrediction(
        {
          streamId: `page-${i}`,
          windowIndex: 1,
          windowStart: T0,
          windowEnd: T0 + 500_000 + i,
          scores: { x: 0.5 },
          present: { audio: false, video: false, text: true, label: false },
        },
        { model: 'm@1' },
      );
      await recorder.releaseStream(`page-${i}`);
      expect(recorder.openChannels).toBe(0);
    }
    // Kept aside for reuse, but bounded: 300 streams × (text, its log view, prediction) is under the bound.
    expect(recorder.retiredChannels).toBe(900);
    await recorder.write(text('page-7', T0 + 1000));
    expect(recorder.openChannels).toBe(2);
    await recorder.close();
    const info = await recordingInfo(path);
    expect(info.channels.filter((c) => c.topic === '/page-7/text')).toHaveLength(1);
    expect(info.streams.find((s) => s.streamId === 'page-7')).toMatchObject({
      messages: { text: 2 },
      predictions: 1,
    });
    expect(info.channels.find((c) => c.kind === 'prediction')?.model).toBe('m@1');
  });
});

describe('predictions', () => {
  it('round-trip exactly on their own channels and stay out of the event stream', async () => {
    const path = file('predictions.mcap');
    const recorder = await McapRecorder.create(path);
    const events = streamEvents('s1', 300);
    const predictions = [0, 1, 2].map((k) => ({
      streamId: 's1',
      windowIndex: k,
      windowStart: T0 + k * 100_000,
      windowEnd: T0 + (k + 1) * 100_000,
      scores: { speech: 1 / (k + 3), music: 0.1 + 0.2 * k },
      present: { audio: true, video: k > 0, text: false, label: false },
    }));
    for (const e of events) void recorder.write(e);
    for (const p of predictions.reverse()) void recorder.writePrediction(p);
    await recorder.close();
    expect(recorder.stats).toMatchObject({ predictions: 3, events: events.length });
    expect(await collect(readPredictions(path))).toEqual(predictions.reverse());
    expect(canonical(await collect(readRecording(path)))).toEqual(canonical(events));
    expect((await recordingInfo(path)).streams[0]?.predictions).toBe(3);
  });
});

describe('recordTo', () => {
  it('passes events through unchanged, records the valid ones and counts the refused', async () => {
    const path = file('operator.mcap');
    const recorder = await McapRecorder.create(path);
    const good = streamEvents('cam', 500);
    const bad = {
      streamId: 'cam',
      modality: 'text',
      time: -1,
      seq: 0,
      payload: { text: 'x' },
    } as AnySourceEvent;
    const input = [...good.slice(0, 10), bad, ...good.slice(10)];
    const output = await lastValueFrom(from(input).pipe(recordTo(recorder), toArray()));
    await recorder.close();
    expect(output).toHaveLength(input.length);
    for (const [i, e] of output.entries()) expect(e).toBe(input[i]);
    expect(recorder.stats.rejected).toEqual({ negative_time: 1 });
    expect(recorder.stats.events).toBe(good.length);
    expect(canonical(await collect(readRecording(path)))).toEqual(canonical(good));
  });

  it('errors a live stream with the RecordingError when the disk write fails mid-recording', async () => {
    // A FIFO whose reader takes the header and goes away: the first chunk written after it fails with EPIPE.
    const path = file('reader-gone.fifo');
    execFileSync('mkfifo', [path]);
    const reading = open(path, 'r');
    const recorder = await McapRecorder.create(path, {
      overwrite: true,
      compression: 'none',
      chunkBytes: 1024,
    });
    const reader = await reading;
    const head = Buffer.alloc(8);
    let got = 0;
    while (got < 8) got += (await reader.read(head, got, 8 - got)).bytesRead;
    expect(hasMcapPrefix(new DataView(head.buffer, head.byteOffset, 8))).toBe(true);
    await reader.close();
    const events = streamEvents('s', 500);
    const passed: AnySourceEvent[] = [];
    const live = interval(1).pipe(
      take(events.length),
      map((i) => events[i]!),
      recordTo(recorder),
      tap((e) => passed.push(e)),
    );
    const error = await lastValueFrom(live).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecordingError);
    expect((error as Error).message).toMatch(/reader-gone\.fifo: writing failed: EPIPE/);
    // It failed at the first chunk, long before the events ran out.
    expect(passed.length).toBeGreaterThan(0);
    expect(passed.length).toBeLessThan(events.length);
    await expect(recorder.close()).rejects.toThrow(/EPIPE/);
  });

  it('errors a live stream with the RecordingError once the recorder is closed under it', async () => {
    const recorder = await McapRecorder.create(file('closed-under.mcap'));
    await recorder.close();
    const events = streamEvents('s', 100);
    const live = interval(1).pipe(
      take(events.length),
      map((i) => events[i]!),
      recordTo(recorder),
      toArray(),
    );
    await expect(lastValueFrom(live)).rejects.toThrow(/recorder is closed/);
  });
});

describe('write backlog', () => {
  it('refuses writes past maxPendingWrites, counting write_backlog; recordTo still passes them on', async () => {
    const path = file('backlog.mcap');
    const recorder = await McapRecorder.create(path, { maxPendingWrites: 5 });
    const events = streamEvents('s', 100);
    // from() emits synchronously: every write is queued before the first one reaches the chunk.
    const output = await lastValueFrom(from(events).pipe(recordTo(recorder), toArray()));
    expect(output).toEqual(events);
    expect(recorder.stats.rejected).toEqual({ write_backlog: events.length - 5 });
    await recorder.close();
    expect(recorder.stats).toMatchObject({ events: 5, pendingWrites: 0 });
    expect(canonical(await collect(readRecording(path)))).toEqual(canonical(events.slice(0, 5)));
  });

  it('bounds the queued bytes too, always taking a lone write however large', async () => {
    const recorder = await McapRecorder.create(file('backlog-bytes.mcap'), { maxPendingBytes: 1 });
    const [a, b] = streamEvents('s', 20);
    const first = recorder.write(a!);
    const second = recorder.write(b!);
    await first;
    const error = await second.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WriteBacklogError);
    expect((error as Error).message).toMatch(/1 writes \(\d+ bytes\) are already queued/);
    await recorder.write(b!);
    await recorder.close();
    expect(recorder.stats).toMatchObject({ events: 2, rejected: { write_backlog: 1 } });
    await expect(McapRecorder.create(file('x.mcap'), { maxPendingWrites: 0 })).rejects.toThrow(
      /option "maxPendingWrites"/,
    );
  });

  it('recordTo errors the stream, without crashing, when the receiveTime callback throws', async () => {
    const recorder = await McapRecorder.create(file('receive-time.mcap'));
    const receiveTime = (e: AnySourceEvent) => (e.payload as unknown as { t: { x: number } }).t.x;
    const error = await lastValueFrom(
      from(streamEvents('s', 10)).pipe(recordTo(recorder, { receiveTime })),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    await recorder.close();
  });
});

describe('McapRecorder', () => {
  it('fails to start with a RecordingError naming the cause when the disk refuses the header', async () => {
    await expect(McapRecorder.create('/dev/full', { overwrite: true })).rejects.toThrow(
      /cannot start.*ENOSPC/,
    );
    // A failed start removes a partial regular file, never a device.
    expect(existsSync('/dev/full')).toBe(true);
    await expect(McapRecorder.create(join(dir, 'no/such/dir.mcap'))).rejects.toThrow(/cannot create.*ENOENT/);
  });

  it('refuses to overwrite a file unless told to', async () => {
    const path = file('exists.mcap');
    writeFileSync(path, 'keep me');
    await expect(McapRecorder.create(path)).rejects.toThrow(RecordingError);
    expect(readFileSync(path, 'utf8')).toBe('keep me');
    const recorder = await McapRecorder.create(path, { overwrite: true });
    await recorder.close();
    expect((await recordingInfo(path)).complete).toBe(true);
  });

  it('rejects bad options, writes after close and seqs MCAP cannot hold', async () => {
    await expect(McapRecorder.create(file('tiny.mcap'), { chunkBytes: 10 })).rejects.toThrow(
      InvalidOptionError,
    );
    await expect(McapRecorder.create(file('lvl.mcap'), { zstdLevel: 40 })).rejects.toThrow(/zstdLevel/);
    const recorder = await McapRecorder.create(file('seq.mcap'), { compression: 'none' });
    const event = streamEvents('s', 10)[0]!;
    await expect(recorder.write({ ...event, seq: 2 ** 32 })).rejects.toThrow(/uint32/);
    await expect(recorder.write(event, -5)).rejects.toThrow(/receiveTime/);
    await recorder.write(event);
    await recorder.close();
    await recorder.close();
    await expect(recorder.write(event)).rejects.toThrow(/recorder is closed/);
    expect(recorder.stats.rejected).toEqual({ seq_too_large: 1, bad_receive_time: 1 });
    expect(await collect(readRecording(file('seq.mcap')))).toEqual([event]);
  });
});
