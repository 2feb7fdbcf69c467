import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader, McapWriter } from '@mcap/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AnySourceEvent, InvalidOptionError } from '../../src/core/index.js';
import { FileReadable, FileWritable } from '../../src/record/file-io.js';
import {
  McapRecorder,
  RecordingError,
  RecordingReader,
  type RecordingWarning,
  readRecording,
  recordingInfo,
} from '../../src/record/index.js';
import { schemaData } from '../../src/record/schemas.js';

const T0 = 5_000_000;
let dir: string;
let fullPath: string;
let fullEvents: AnySourceEvent[];

const file = (name: string) => join(dir, name);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof Error)) throw new Error('expected a failure');
  return error;
}

function audio(i: number): AnySourceEvent {
  const samples = Int16Array.from({ length: 160 }, (_, k) => (i * 7 + k * 13) % 30000);
  return {
    streamId: 'mic',
    modality: 'audio',
    time: T0 + i * 10_000,
    seq: i,
    payload: { sampleRate: 16000, channels: 1, samples },
  };
}

const key = (e: AnySourceEvent) => `${e.streamId}/${e.modality}/${e.seq}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'braid-badfiles-'));
  fullPath = file('full.mcap');
  const recorder = await McapRecorder.create(fullPath, { chunkBytes: 4096 });
  fullEvents = Array.from({ length: 300 }, (_, i) => audio(i));
  for (const e of fullEvents) await recorder.write(e);
  await recorder.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('files that are not recordings', () => {
  it.each([
    [
      'text.mcap',
      'hello, I am text',
      /not an MCAP file: expected .*89 4d 43 41 50 30 0d 0a, found 68 65 6c 6c/,
    ],
    ['empty.mcap', '', /not an MCAP file: .*found an empty file/],
  ])('%s: a RecordingError saying what was expected and found', async (name, content, message) => {
    writeFileSync(file(name), content);
    const error = await failure(collect(readRecording(file(name))));
    expect(error).toBeInstanceOf(RecordingError);
    expect((error as RecordingError).code).toBe('BRAID_ERR_RECORDING');
    expect(error.message).toMatch(message);
    expect(error.message).toContain(file(name));
  });

  it('a missing file: a RecordingError naming the path and the cause', async () => {
    const error = await failure(recordingInfo(file('nope.mcap')));
    expect(error).toBeInstanceOf(RecordingError);
    expect(error.message).toMatch(/nope\.mcap: cannot open the recording: .*ENOENT/);
  });
});

describe('recordings cut short', () => {
  it('at any byte: never throws, yields only whole events of the recording, in order, with a truncated warning', async () => {
    const full = readFileSync(fullPath);
    const known = new Map(fullEvents.map((e) => [key(e), e]));
    let previous = 0;
    for (let cut = 8; cut < full.length; cut += Math.ceil(full.length / 37)) {
      const path = file(`cut-${cut}.mcap`);
      writeFileSync(path, full.subarray(0, cut));
      const warnings: RecordingWarning[] = [];
      const events = await collect(readRecording(path, { onWarning: (w) => warnings.push(w) }));
      expect(warnings.map((w) => w.code)).toEqual(['truncated']);
      for (const e of events) expect(e).toEqual(known.get(key(e)));
      // Audio of one stream: a cut keeps a prefix, and a longer cut never keeps less.
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
      expect(events.length).toBeGreaterThanOrEqual(previous);
      previous = events.length;
    }
    expect(previous).toBeGreaterThan(200);
  });

  it('keeps every complete chunk: a cut at a chunk end keeps it, one byte less loses it', async () => {
    const readable = await FileReadable.open(fullPath);
    const index = await McapIndexedReader.Initialize({ readable }).catch(async (e: unknown) => {
      await readable.close();
      throw e;
    });
    await readable.close();
    expect(index.chunkIndexes.length).toBeGreaterThan(10);
    const full = readFileSync(fullPath);
    const countAt = async (cut: number) => {
      const path = file(`chunk-cut-${cut}.mcap`);
      writeFileSync(path, full.subarray(0, cut));
      const warnings: string[] = [];
      const events = await collect(readRecording(path, { onWarning: (w) => warnings.push(w.message) }));
      return { events, warning: warnings[0] ?? '' };
    };
    for (const i of [0, 4, 9]) {
      const chunk = index.chunkIndexes[i]!;
      const end = Number(chunk.chunkStartOffset + chunk.chunkLength);
      const whole = await countAt(end);
      const partial = await countAt(end - 1);
      expect(whole.events.length).toBeGreaterThan(partial.events.length);
      expect(whole.warning).toContain(`in ${i + 1} chunks`);
      const last = whole.events.at(-1)!;
      expect(whole.warning).toContain(`up to log time ${last.time} µs`);
      expect(whole.warning).toContain(`(${(last.time - T0) / 1e6} s after the first message)`);
      expect(BigInt(last.time) * 1000n).toBe(chunk.messageEndTime);
    }
  });

  it('killed before the first chunk: an empty recording, and a warning that says so', async () => {
    const path = file('header-only.mcap');
    writeFileSync(path, readFileSync(fullPath).subarray(0, 120));
    const warnings: RecordingWarning[] = [];
    const reader = await RecordingReader.open(path, { onWarning: (w) => warnings.push(w) });
    expect(await collect(reader.events())).toEqual([]);
    expect(reader.info).toMatchObject({ complete: false, messages: 0, startTime: undefined, duration: 0 });
    await reader.close();
    expect(warnings[0]?.message).toMatch(/no complete chunk, so no messages/);
  });

  it('a damaged chunk in a finished file: a RecordingError, not garbage', async () => {
    const full = Buffer.from(readFileSync(fullPath));
    const readable = await FileReadable.open(fullPath);
    const index = await McapIndexedReader.Initialize({ readable });
    await readable.close();
    const chunk = index.chunkIndexes[3]!;
    const middle = Number(chunk.chunkStartOffset + chunk.chunkLength / 2n);
    for (let i = 0; i < 16; i += 1) full[middle + i] = full[middle + i]! ^ 0x5a;
    writeFileSync(file('damaged.mcap'), full);
    const error = await failure(collect(readRecording(file('damaged.mcap'))));
    expect(error).toBeInstanceOf(RecordingError);
    expect(error.message).toMatch(
      /reading messages failed after \d+ messages, past log time \d+ µs \(damaged file\?\): /,
    );
  });
});

describe('a finished recording whose summary is damaged', () => {
  it("is read record by record with the data section's own schemas, and is not called cut short", async () => {
    const bytes = Buffer.from(readFileSync(fullPath));
    // The footer (opcode, length, summary start, summary offset start, CRC) sits before the closing magic.
    const footer = bytes.length - 8 - 29;
    const summaryStart = Number(bytes.readBigUInt64LE(footer + 9));
    // Change a letter of the summary's first record, the schema repeated from the data section (opcode, length,
    // id, then its name's length and name): the record still parses, the summary's CRC no longer holds.
    expect(bytes[summaryStart]).toBe(0x03);
    bytes[summaryStart + 15] = bytes[summaryStart + 15]! ^ 0x20;
    writeFileSync(file('bad-summary.mcap'), bytes);
    const warnings: RecordingWarning[] = [];
    const info = await recordingInfo(file('bad-summary.mcap'), { onWarning: (w) => warnings.push(w) });
    expect(warnings.map((w) => w.code)).toEqual(['no_index']);
    expect(warnings[0]!.message).toMatch(/summary CRC/);
    expect(info.complete).toBe(true);
    expect(info.streams[0]?.messages).toEqual({ audio: 300 });
    const events = await collect(readRecording(file('bad-summary.mcap'), { onWarning: () => {} }));
    expect(events.map(key)).toEqual(fullEvents.map(key));
  });
});

describe('channels and messages braid does not know', () => {
  it('are skipped with counted warnings while the rest is read', async () => {
    const path = file('mixed.mcap');
    const sink = await FileWritable.open(path, true);
    const writer = new McapWriter({ writable: sink });
    await writer.start({ profile: '', library: 'test' });
    const textSchema = await writer.registerSchema({
      name: 'braid.Text',
      encoding: 'jsonschema',
      data: schemaData('braid.Text'),
    });
    const imuSchema = await writer.registerSchema({
      name: 'acme.Imu',
      encoding: 'jsonschema',
      data: new Uint8Array(2),
    });
    const meta = (kind: string, modality: string) =>
      new Map([
        ['braid.streamId', 's'],
        ['braid.kind', kind],
        ['braid.modality', modality],
      ]);
    const text = await writer.registerChannel({
      topic: '/s/text',
      schemaId: textSchema,
      messageEncoding: 'json',
      metadata: meta('event', 'text'),
    });
    const foreign = [
      await writer.registerChannel({
        topic: '/imu',
        schemaId: imuSchema,
        messageEncoding: 'json',
        metadata: new Map(),
      }),
      await writer.registerChannel({
        topic: '/raw',
        schemaId: 0,
        messageEncoding: 'cbor',
        metadata: new Map(),
      }),
      await writer.registerChannel({
        topic: '/odd',
        schemaId: textSchema,
        messageEncoding: 'json',
        metadata: meta('event', 'audio'),
      }),
      await writer.registerChannel({
        topic: '/anon',
        schemaId: textSchema,
        messageEncoding: 'json',
        metadata: new Map(),
      }),
    ];
    const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const add = (channelId: number, i: number, data: Uint8Array) =>
      writer.addMessage({ channelId, sequence: i, logTime: BigInt(T0 + i) * 1000n, publishTime: 0n, data });
    for (let i = 0; i < 6; i += 1) {
      await add(
        text,
        i,
        i === 2
          ? json({ timestamp: { sec: 0, nsec: 0 } })
          : json({ timestamp: { sec: 5, nsec: i * 1000 }, text: `t${i}` }),
      );
      for (const c of foreign) await add(c, i, json({ x: i }));
    }
    await add(text, 6, new TextEncoder().encode('{"timestamp":'));
    await writer.end();
    await sink.close();

    const warnings: RecordingWarning[] = [];
    const reader = await RecordingReader.open(path, { onWarning: (w) => warnings.push(w) });
    const events = await collect(reader.events());
    expect(events.map((e) => e.seq)).toEqual([0, 1, 3, 4, 5]);
    expect(reader.badMessages).toBe(2);
    await reader.close();
    const byCode = (code: string) => warnings.filter((w) => w.code === code).map((w) => w.message);
    expect(byCode('unknown_channel')).toHaveLength(4);
    expect(byCode('unknown_channel').join('\n')).toMatch(
      /\/imu, 6 messages\): schema "acme.Imu" is not one braid reads/,
    );
    expect(byCode('unknown_channel').join('\n')).toMatch(/\/raw.*it has no schema/);
    expect(byCode('unknown_channel').join('\n')).toMatch(
      /\/odd.*schema braid.Text cannot carry audio events/,
    );
    expect(byCode('unknown_channel').join('\n')).toMatch(/\/anon.*no "braid.streamId" metadata/);
    expect(byCode('bad_message')).toEqual([
      expect.stringMatching(/message 2 of \/s\/text .*does not match its schema: text/),
      expect.stringMatching(/message 6 of \/s\/text .*not JSON/),
    ]);
    expect(reader.info.channels.filter((c) => c.skipped).map((c) => c.topic)).toEqual([
      '/imu',
      '/raw',
      '/odd',
      '/anon',
    ]);
    expect(reader.info.streams).toEqual([
      { streamId: 's', modalities: ['text'], messages: { text: 7 }, predictions: 0, labelEvents: 0 },
    ]);
  });
});

describe('time ranges', () => {
  it('outside the recording or inverted: a clear error', async () => {
    const info = await recordingInfo(fullPath);
    expect(info.duration).toBe(2_990_000);
    const past = await failure(collect(readRecording(fullPath, { from: 3_000_000 })));
    expect(past).toBeInstanceOf(RecordingError);
    expect(past.message).toMatch(/from 3000000 µs is past the end of the recording, which lasts 2990000 µs/);
    await expect(collect(readRecording(fullPath, { from: 2_000, to: 1_000 }))).rejects.toThrow(
      InvalidOptionError,
    );
    await expect(collect(readRecording(fullPath, { from: -1 }))).rejects.toThrow(/option "from"/);
    await expect(collect(readRecording(fullPath, { to: 1.5 }))).rejects.toThrow(/option "to"/);
    expect(await collect(readRecording(fullPath, { from: 2_990_000 }))).toEqual([fullEvents.at(-1)]);
  });

  it('on an empty recording: nothing to read, and from > 0 is an error', async () => {
    const path = file('empty-recording.mcap');
    await (await McapRecorder.create(path)).close();
    const info = await recordingInfo(path);
    expect(info).toMatchObject({
      complete: true,
      messages: 0,
      streams: [],
      startTime: undefined,
      duration: 0,
    });
    expect(await collect(readRecording(path))).toEqual([]);
    await expect(collect(readRecording(path, { from: 10 }))).rejects.toThrow(/holds no messages/);
  });
});

/**
 * A braid.Text channel of `count` messages written by @mcap/core's own writer with `layout`'s options: the MCAP spec
 * makes chunks, chunk and message indexes, statistics and the summary's repeated channels and schemas optional, and
 * other writers leave them out. `time(i)` is message i's log time in µs (file order need not be log-time order).
 */
async function writeLayout(
  path: string,
  layout: Partial<ConstructorParameters<typeof McapWriter>[0]>,
  count = 50,
  time = (i: number) => T0 + i * 1000,
  /** Message i's JSON (at log time t µs): by default a valid braid.Text. */
  body = (i: number, t: number): unknown => ({
    timestamp: { sec: Math.floor(t / 1e6), nsec: (t % 1e6) * 1000 },
    text: `t${i}`,
  }),
): Promise<void> {
  const sink = await FileWritable.open(path, true);
  const writer = new McapWriter({ writable: sink, chunkSize: 1024, ...layout });
  await writer.start({ profile: '', library: 'another writer' });
  const schemaId = await writer.registerSchema({
    name: 'braid.Text',
    encoding: 'jsonschema',
    data: schemaData('braid.Text'),
  });
  const channelId = await writer.registerChannel({
    topic: '/s/text',
    schemaId,
    messageEncoding: 'json',
    metadata: new Map([
      ['braid.streamId', 's'],
      ['braid.kind', 'event'],
      ['braid.modality', 'text'],
    ]),
  });
  for (let i = 0; i < count; i += 1) {
    const t = time(i);
    const data = new TextEncoder().encode(JSON.stringify(body(i, t)));
    await writer.addMessage({ channelId, sequence: i, logTime: BigInt(t) * 1000n, publishTime: 0n, data });
  }
  await writer.end();
  await sink.close();
}

describe('finished files whose summary leaves out what is optional', () => {
  const layouts: [string, Partial<ConstructorParameters<typeof McapWriter>[0]>, RegExp][] = [
    ['no chunks', { useChunks: false }, /no chunk index for its 50 messages/],
    ['no chunk index', { useChunkIndex: false }, /no chunk index for its 50 messages/],
    [
      'no chunk index, no statistics',
      { useChunkIndex: false, useStatistics: false },
      /no chunk index and no statistics/,
    ],
    ['no message indexes', { useMessageIndex: false }, /has no message index/],
    ['channels not repeated', { repeatChannels: false }, /does not repeat channel 0/],
    ['schemas not repeated', { repeatSchemas: false }, /does not repeat schema 1 \(of channel 0\)/],
  ];
  it.each(layouts)(
    '%s: every message is read, record by record, with a warning saying why',
    async (name, layout, why) => {
      const path = file(`layout-${name.replaceAll(/\W+/g, '-')}.mcap`);
      await writeLayout(path, layout);
      const warnings: RecordingWarning[] = [];
      const info = await recordingInfo(path, { onWarning: (w) => warnings.push(w) });
      expect(info.complete).toBe(true);
      expect(info.streams[0]?.messages).toEqual({ text: 50 });
      expect(warnings.map((w) => w.code)).toEqual(['no_index']);
      expect(warnings[0]!.message).toMatch(why);
      const events = await collect(readRecording(path, { onWarning: () => {} }));
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    },
  );

  it('all of it there, with or without statistics: read through the index, no warning', async () => {
    for (const [name, layout] of [
      ['whole', {}],
      ['no statistics', { useStatistics: false }],
    ] as const) {
      const path = file(`layout-${name.replaceAll(' ', '-')}.mcap`);
      await writeLayout(path, layout);
      const warnings: RecordingWarning[] = [];
      const events = await collect(readRecording(path, { onWarning: (w) => warnings.push(w) }));
      expect(events).toHaveLength(50);
      expect(warnings).toEqual([]);
    }
  });

  it('without statistics, a damaged chunk fails as damage (exit 1), not as a file cut short', async () => {
    const path = file('no-stats-damaged.mcap');
    await writeLayout(path, { useStatistics: false }, 400);
    const bytes = Buffer.from(readFileSync(path));
    const readable = await FileReadable.open(path);
    const index = await McapIndexedReader.Initialize({ readable });
    await readable.close();
    const chunk = index.chunkIndexes[2]!;
    const middle = Number(chunk.chunkStartOffset + chunk.chunkLength / 2n);
    for (let i = 0; i < 16; i += 1) bytes[middle + i] = bytes[middle + i]! ^ 0x5a;
    writeFileSync(path, bytes);
    const warnings: RecordingWarning[] = [];
    const error = await failure(recordingInfo(path, { onWarning: (w) => warnings.push(w) }));
    expect(error).toBeInstanceOf(RecordingError);
    expect(error.message).toMatch(/reading messages failed after \d+ messages \(damaged file\?\): .*CRC/);
    expect(warnings).toEqual([]);
  });

  it('messages outside chunks, cut short, out of log-time order: handed on in order as they are read, not all at the end', async () => {
    const path = file('unchunked.mcap');
    // Each run of 10 written in reverse: up to 9 ms out of order.
    await writeLayout(path, { useChunks: false }, 5000, (i) => T0 + (i - (i % 10) + 9 - (i % 10)) * 1000);
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 40));
    const reader = await RecordingReader.open(path, { onWarning: () => {} });
    expect(reader.info.complete).toBe(false);
    const batches = await collect(reader.eventBatches());
    await reader.close();
    const times = batches.flat().map((e) => e.time);
    expect(times).toHaveLength(5000);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // Bounded by what the file's disorder needs, not by the file: no batch near the whole.
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThan(2100);
  });
});

describe('many bad messages on one channel', () => {
  it('are warned of one by one up to five, then told in one warning per pass', async () => {
    const path = file('many-bad.mcap');
    // Every fifth message valid, the rest not braid.Text.
    await writeLayout(
      path,
      {},
      20,
      (i) => T0 + i,
      (i) => (i % 5 === 0 ? { timestamp: { sec: 5, nsec: i * 1000 }, text: `t${i}` } : { nope: i }),
    );
    const warnings: string[] = [];
    const reader = await RecordingReader.open(path, {
      onWarning: (w) => (w.code === 'bad_message' ? warnings.push(w.message) : undefined),
    });
    expect((await collect(reader.events())).map((e) => e.seq)).toEqual([0, 5, 10, 15]);
    expect(warnings).toHaveLength(6);
    expect(warnings[4]).toMatch(/further bad messages on this channel are only counted/);
    expect(warnings[5]).toBe(
      'skipped 11 more bad messages of /s/text, not reported one by one (16 bad on this channel in all)',
    );
    // A second pass (a looped replay) warns of nothing one by one, and tells its own in one warning.
    await collect(reader.events());
    await reader.close();
    expect(warnings.slice(6)).toEqual([
      'skipped 16 more bad messages of /s/text, not reported one by one (32 bad on this channel in all)',
    ]);
    expect(reader.badMessages).toBe(32);
  });
});
