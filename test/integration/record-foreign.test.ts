import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { McapIndexedReader, McapWriter } from '@mcap/core';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/events.js';
import { saveModel } from '../../src/model/model-io.js';
import { loadDecompress } from '../../src/record/decompress.js';
import { RecordingError, type RecordingWarning } from '../../src/record/errors.js';
import { FileReadable, FileWritable } from '../../src/record/file-io.js';
import { readRecording, recordingInfo } from '../../src/record/recording-reader.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { requireTool } from '../helpers/system-tools.js';

const run = promisify(execFile);
const tools = requireTool('lz4') && requireTool('bzip2');
const dir = mkdtempSync(join(tmpdir(), 'braid-foreign-'));
const T0 = 1_764_000_000_000_000;

/**
 * Foxglove's schemas as another tool declares them: written out here from Foxglove's published .proto files (field
 * numbers and types as there), not taken from braid, so braid is tested on descriptors it did not build.
 */
const FOXGLOVE_PROTO = `
syntax = "proto3";
package foxglove;
import "google/protobuf/timestamp.proto";
message RawAudio {
  google.protobuf.Timestamp timestamp = 1;
  bytes data = 2;
  string format = 3;
  fixed32 sample_rate = 4;
  fixed32 number_of_channels = 5;
}
message CompressedImage {
  google.protobuf.Timestamp timestamp = 1;
  string frame_id = 4;
  bytes data = 2;
  string format = 3;
}
message RawImage {
  google.protobuf.Timestamp timestamp = 1;
  string frame_id = 7;
  fixed32 width = 2;
  fixed32 height = 3;
  string encoding = 4;
  fixed32 step = 5;
  bytes data = 6;
}
message Log {
  enum Level { UNKNOWN = 0; DEBUG = 1; INFO = 2; WARNING = 3; ERROR = 4; FATAL = 5; }
  google.protobuf.Timestamp timestamp = 1;
  Level level = 2;
  string message = 3;
  string name = 4;
  string file = 5;
  fixed32 line = 6;
}
`;

function foxgloveRoot(): protobuf.Root {
  const root = new protobuf.Root();
  protobuf.parse(FOXGLOVE_PROTO, root, { keepCase: true });
  root.addJSON((protobuf.common.get('google/protobuf/timestamp.proto') as protobuf.INamespace).nested ?? {});
  root.resolveAll();
  return root;
}

const lz4 = (data: Uint8Array) => ({
  compression: 'lz4',
  compressedData: new Uint8Array(execFileSync('lz4', ['-c', '-q'], { input: data })),
});
const bz2 = (data: Uint8Array) => ({
  compression: 'bz2',
  compressedData: new Uint8Array(execFileSync('bzip2', ['-c'], { input: data })),
});

interface Written {
  readonly topic: string;
  readonly logTime: bigint;
  readonly expect?: Partial<AnySourceEvent>;
}

/**
 * A file as a robot logger might write it: protobuf messages in lz4 chunks, topics with no braid metadata, log times
 * that are not whole µs, a camera as JPEG, a microphone, a chat log, a BGR camera with padded rows, an IMU braid
 * knows nothing of, and two single-segment topics that only --map can put into one stream.
 */
async function writeProtobufFile(path: string): Promise<Written[]> {
  const root = foxgloveRoot();
  const set = descriptor.FileDescriptorSet.encode(
    (root as unknown as { toDescriptor(v: string): protobuf.Message }).toDescriptor('proto3'),
  ).finish();
  const sink = await FileWritable.open(path, true);
  const writer = new McapWriter({ writable: sink, chunkSize: 16 * 1024, compressChunk: lz4 });
  await writer.start({ profile: '', library: 'acme-logger 3.1' });
  const schema = async (name: string) => writer.registerSchema({ name, encoding: 'protobuf', data: set });
  const imu = await writer.registerSchema({ name: 'acme.Imu', encoding: 'protobuf', data: set });
  const ids = {
    audio: await schema('foxglove.RawAudio'),
    jpeg: await schema('foxglove.CompressedImage'),
    raw: await schema('foxglove.RawImage'),
    log: await schema('foxglove.Log'),
  };
  const channel = (topic: string, schemaId: number) =>
    writer.registerChannel({ topic, schemaId, messageEncoding: 'protobuf', metadata: new Map() });
  const ch = {
    mic: await channel('/robot/mic', ids.audio),
    camera: await channel('/robot/camera', ids.jpeg),
    chat: await channel('/robot/chat', ids.log),
    bgr: await channel('/other/raw', ids.raw),
    imu: await channel('/imu', imu),
    cam0: await channel('/cam0', ids.jpeg),
    mic0: await channel('/mic0', ids.audio),
  };
  const written: Written[] = [];
  const stamp = (ns: bigint) => ({
    seconds: Number(ns / 1_000_000_000n),
    nanos: Number(ns % 1_000_000_000n),
  });
  const add = async (
    topic: string,
    channelId: number,
    type: string,
    seq: number,
    ns: bigint,
    message: object,
    expected?: Partial<AnySourceEvent>,
  ) => {
    const data = root
      .lookupType(type)
      .encode({ timestamp: stamp(ns), ...message })
      .finish();
    await writer.addMessage({ channelId, sequence: seq, logTime: ns, publishTime: ns + 5_000_000n, data });
    written.push({ topic, logTime: ns, ...(expected && { expect: expected }) });
  };
  const jpeg = new Uint8Array(
    await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 10, g: 200, b: 30 } } })
      .jpeg()
      .toBuffer(),
  );
  for (let i = 0; i < 150; i++) {
    // 10 ms of audio; log times carry sub-µs nanoseconds, as a hardware clock gives them.
    const ns = BigInt(T0 + i * 10_000) * 1000n + 437n;
    const samples = Int16Array.from({ length: 160 }, (_, k) =>
      Math.round(3000 * Math.sin((i * 160 + k) / 5)),
    );
    const pcm = new Uint8Array(samples.buffer);
    const audio = { data: pcm, format: 'pcm-s16', sample_rate: 16000, number_of_channels: 1 };
    await add('/robot/mic', ch.mic, 'foxglove.RawAudio', i, ns, audio, {
      streamId: 'robot',
      modality: 'audio',
      time: T0 + i * 10_000,
      payload: { sampleRate: 16000, channels: 1, samples },
    });
    await add('/mic0', ch.mic0, 'foxglove.RawAudio', i, ns, audio);
    if (i % 10 === 3) {
      await add(
        '/robot/camera',
        ch.camera,
        'foxglove.CompressedImage',
        i,
        ns,
        { frame_id: 'cam', data: jpeg, format: 'jpeg' },
        {
          streamId: 'robot',
          modality: 'video',
          payload: { format: 'jpeg', data: jpeg },
        },
      );
      await add('/cam0', ch.cam0, 'foxglove.CompressedImage', i, ns, {
        frame_id: 'cam',
        data: jpeg,
        format: 'jpeg',
      });
      // 2x2 BGR with 2 bytes of padding per row: braid keeps RGB without the padding.
      const bgr = Uint8Array.of(3, 2, 1, 6, 5, 4, 0, 0, 9, 8, 7, 12, 11, 10, 0, 0);
      await add(
        '/other/raw',
        ch.bgr,
        'foxglove.RawImage',
        i,
        ns,
        { frame_id: 'o', width: 2, height: 2, encoding: 'bgr8', step: 8, data: bgr },
        {
          streamId: 'other',
          modality: 'video',
          payload: {
            format: 'rgb',
            width: 2,
            height: 2,
            data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
          },
        },
      );
      await writer.addMessage({
        channelId: ch.imu,
        sequence: i,
        logTime: ns,
        publishTime: ns,
        data: new Uint8Array(4),
      });
    }
    if (i % 50 === 20)
      await add(
        '/robot/chat',
        ch.chat,
        'foxglove.Log',
        i,
        ns,
        { level: 2, message: `note ${i}`, name: 'op', file: '', line: 0 },
        {
          streamId: 'robot',
          modality: 'text',
          payload: { text: `note ${i}` },
        },
      );
  }
  await writer.end();
  await sink.close();
  return written;
}

/** The same kind of file in JSON (Foxglove's JSON convention: base64 bytes, {sec, nsec}) with bz2 chunks. */
async function writeJsonFile(path: string): Promise<void> {
  const sink = await FileWritable.open(path, true);
  const writer = new McapWriter({ writable: sink, chunkSize: 4 * 1024, compressChunk: bz2 });
  await writer.start({ profile: '', library: 'acme-logger 3.1' });
  const { RawAudio, Log } = await import('@foxglove/schemas/jsonschema.js');
  const audio = await writer.registerSchema({
    name: 'foxglove.RawAudio',
    encoding: 'jsonschema',
    data: Buffer.from(JSON.stringify(RawAudio)),
  });
  const log = await writer.registerSchema({
    name: 'foxglove.Log',
    encoding: 'jsonschema',
    data: Buffer.from(JSON.stringify(Log)),
  });
  const mic = await writer.registerChannel({
    topic: '/desk/mic',
    schemaId: audio,
    messageEncoding: 'json',
    metadata: new Map(),
  });
  const chat = await writer.registerChannel({
    topic: '/desk/log',
    schemaId: log,
    messageEncoding: 'json',
    metadata: new Map(),
  });
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  for (let i = 0; i < 100; i++) {
    const ns = BigInt(T0 + i * 10_000) * 1000n;
    const timestamp = { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
    const samples = Buffer.from(Int16Array.from({ length: 160 }, (_, k) => k - i).buffer).toString('base64');
    await writer.addMessage({
      channelId: mic,
      sequence: i,
      logTime: ns,
      publishTime: ns,
      data: json({ timestamp, data: samples, format: 'pcm-s16', sample_rate: 16000, number_of_channels: 1 }),
    });
    if (i % 40 === 0)
      await writer.addMessage({
        channelId: chat,
        sequence: i,
        logTime: ns,
        publishTime: ns,
        data: json({ timestamp, level: 2, message: `json ${i}`, name: 'desk', file: 'a.py', line: 3 }),
      });
  }
  await writer.end();
  await sink.close();
}

const collect = async <T>(items: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
};

const protoFile = join(dir, 'robot.mcap');
const jsonFile = join(dir, 'desk.mcap');
let written: Written[] = [];

beforeAll(async () => {
  if (!tools) return;
  written = await writeProtobufFile(protoFile);
  await writeJsonFile(jsonFile);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!tools)('MCAP files of other tools, with Foxglove schemas', () => {
  it('is what it claims: lz4 and bz2 chunks, no braid metadata', async () => {
    for (const [file, compression] of [
      [protoFile, 'lz4'],
      [jsonFile, 'bz2'],
    ] as const) {
      const readable = await FileReadable.open(file);
      const reader = await McapIndexedReader.Initialize({
        readable,
        decompressHandlers: await loadDecompress(),
      });
      expect(new Set(reader.chunkIndexes.map((c) => c.compression))).toEqual(new Set([compression]));
      expect([...reader.channelsById.values()].every((c) => c.metadata.size === 0)).toBe(true);
      await readable.close();
    }
  });

  it('infers streams from topics and modalities from schemas, skipping what it cannot read', async () => {
    const warnings: RecordingWarning[] = [];
    const info = await recordingInfo(protoFile, { onWarning: (w) => warnings.push(w) });
    expect(info.streams.map((s) => [s.streamId, s.modalities])).toEqual([
      ['cam0', ['video']],
      ['mic0', ['audio']],
      ['other', ['video']],
      ['robot', ['audio', 'text', 'video']],
    ]);
    expect(info.channels.find((c) => c.topic === '/robot/chat')).toMatchObject({
      schema: 'foxglove.Log',
      messageEncoding: 'protobuf',
      streamId: 'robot',
      modality: 'text',
      origin: 'inferred',
    });
    expect(warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(/\/imu.*schema "acme.Imu" is not one braid reads/),
    ]);
  });

  it('decodes every message with the file own protobuf schema: audio, JPEG, padded BGR, Log text', async () => {
    const events = await collect(
      readRecording(protoFile, { streams: ['robot', 'other'], onWarning: () => {} }),
    );
    const expected = written.filter((w) => w.expect).map((w) => w.expect!);
    expect(events).toHaveLength(expected.length);
    for (const [i, e] of events.entries()) expect(e).toMatchObject(expected[i]!);
    // Sub-µs log times are floored to whole µs; order is by log time.
    expect(events[0]?.time).toBe(T0);
    expect(events.every((e, i) => i === 0 || e.time >= events[i - 1]!.time)).toBe(true);
  });

  it('reads JSON with Foxglove conventions in bz2 chunks', async () => {
    const events = await collect(readRecording(jsonFile));
    expect(events.filter((e) => e.modality === 'audio')).toHaveLength(100);
    expect(events.filter((e) => e.modality === 'text').map((e) => e.payload)).toEqual([
      { text: 'json 0' },
      { text: 'json 40' },
      { text: 'json 80' },
    ]);
    expect(new Set(events.map((e) => e.streamId))).toEqual(new Set(['desk']));
  });

  it('maps topics to a stream with --map, and says what is wrong with a bad mapping', async () => {
    const map = [
      { topic: '/cam0', streamId: 'rig', modality: 'video' as const },
      { topic: '/mic0', streamId: 'rig', modality: 'audio' as const },
    ];
    const info = await recordingInfo(protoFile, { map, onWarning: () => {} });
    expect(info.streams.find((s) => s.streamId === 'rig')).toMatchObject({ modalities: ['audio', 'video'] });
    expect(info.streams.map((s) => s.streamId)).not.toContain('cam0');
    const rig = await collect(readRecording(protoFile, { map, streams: ['rig'], onWarning: () => {} }));
    expect(rig.filter((e) => e.modality === 'video')).toHaveLength(15);
    await expect(
      recordingInfo(protoFile, { map: [{ topic: '/nope', streamId: 'x', modality: 'audio' }] }),
    ).rejects.toThrow(/--map names "\/nope", not a topic of this recording; its topics are .*"\/robot\/mic"/);
    await expect(
      recordingInfo(protoFile, {
        map: [{ topic: '/robot/chat', streamId: 'x', modality: 'audio' }],
        onWarning: () => {},
      }),
    ).rejects.toThrow(RecordingError);
    await expect(
      recordingInfo(protoFile, {
        map: [{ topic: '/robot/chat', streamId: 'x', modality: 'audio' }],
        onWarning: () => {},
      }),
    ).rejects.toThrow(/schema foxglove.Log cannot carry audio events/);
    // One topic read two ways is a usage error, not the last mapping silently winning; the same mapping twice is one.
    await expect(
      recordingInfo(protoFile, { map: [...map, { topic: '/cam0', streamId: 'other', modality: 'video' }] }),
    ).rejects.toThrow(/option "map": maps topic \/cam0 twice \(\/cam0=rig:video, \/cam0=other:video\)/);
    const again = await recordingInfo(protoFile, { map: [...map, map[0]!], onWarning: () => {} });
    expect(again.streams.find((s) => s.streamId === 'rig')).toMatchObject({ modalities: ['audio', 'video'] });
  });

  it('replays through the live pipeline from the command line: braid replay --map, braid info', async () => {
    const modelDir = join(dir, 'model');
    await saveModel(untrainedModel(5), modelDir);
    const out = join(dir, 'rig.ndjson');
    const cli = ['--import', 'tsx', 'src/cli/run.ts'];
    const map = ['--map', '/cam0=rig:video', '--map', '/mic0=rig:audio'];
    await run(process.execPath, [
      ...cli,
      'replay',
      protoFile,
      ...map,
      '--streams',
      'rig',
      '--model',
      modelDir,
      '--out',
      out,
    ]);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    // 1.5 s of the rig stream in 500 ms windows, video in every one.
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((l) => l.streamId === 'rig' && l.present.audio && l.present.video)).toBe(true);
    const { stdout } = await run(process.execPath, [...cli, 'info', protoFile, ...map]);
    expect(stdout).toMatch(/\/cam0 \(foxglove.CompressedImage, protobuf\) -> rig:video \(--map\)/);
    expect(stdout).toMatch(/\/robot\/chat \(foxglove.Log, protobuf\) -> robot:text/);
  }, 60_000);
});
