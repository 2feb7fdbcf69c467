import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader } from '@mcap/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { saveModel } from '../../src/model/model-io.js';
import { FileReadable } from '../../src/record/file-io.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { RecordingReader, readPredictions, recordingInfo } from '../../src/record/recording-reader.js';
import { encodeFrame } from '../../src/server/protocol.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { connect, inbox, openSockets, roundTrip } from '../helpers/ws-client.js';

const dir = mkdtempSync(join(tmpdir(), 'braid-serve-'));
const modelDir = join(dir, 'model');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const s of openSockets.splice(0)) s.terminate();
});

/** Starts `braid serve` on a free port and resolves with its URL once it listens. */
async function serve(...args: string[]): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = spawn(process.execPath, [
    '--import',
    'tsx',
    'src/cli/run.ts',
    'serve',
    '--port',
    '0',
    '--model',
    modelDir,
    '--backend',
    'cpu-fused',
    ...args,
  ]);
  children.push(child);
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      log += String(d);
      const m = /serving on (http:\/\/\S+)/.exec(log);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${log}`)));
  });
  return { child, url, log: () => log };
}

beforeAll(async () => {
  await saveModel(untrainedModel(), modelDir);
});

describe('braid serve', () => {
  it('records every ingested stream and its predictions with --record and finishes the file on SIGINT', async () => {
    const recordDir = join(dir, 'rec');
    // Thresholds of 0: speech turns on at the first window and off, closed, after the last.
    const { child, url } = await serve('--record', recordDir, '--events', 'speech:on=0,off=0');
    const sub = new WebSocket(`${url.replace('http', 'ws')}/subscribe`);
    const live: { windowIndex: number; windowEnd: number; scores: Record<string, number> }[] = [];
    const liveEvents: Record<string, unknown>[] = [];
    let lastWindowIn: () => void = () => {};
    const lastWindow = new Promise<void>((r) => (lastWindowIn = r));
    sub.on('message', (d) => {
      const m = JSON.parse(String(d));
      if (m.type === 'event') {
        liveEvents.push(m);
        // The closing off follows the stream's last prediction: then everything is out.
        if (m.closed && m.label === 'speech') lastWindowIn();
      }
      if (m.type === 'prediction') live.push(m);
    });
    await new Promise((r) => sub.once('open', r));
    sub.send(JSON.stringify({ subscribe: '*', events: true }));
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ingest`);
    await new Promise((r) => ws.once('open', r));
    ws.send(
      JSON.stringify({
        type: 'hello',
        version: 1,
        streamId: 'mic-7',
        modalities: ['audio', 'text'],
        audio: { sampleRate: 16000, format: 'pcm16' },
      }),
    );
    for (let i = 0; i < 100; i++)
      ws.send(
        encodeFrame({
          modality: 'audio',
          time: 5_000_000 + i * 10_000,
          seq: i,
          payload: new Uint8Array(320),
        }),
      );
    ws.send(JSON.stringify({ type: 'text', time: 5_200_000, seq: 0, text: 'recorded too' }));
    ws.send(JSON.stringify({ type: 'close' }));
    await lastWindow;
    // The other labels' closing offs went out in the same turn as speech's: a pong comes after them.
    await new Promise((r) => {
      sub.once('pong', r);
      sub.ping();
    });
    ws.close();
    sub.close();
    child.kill('SIGINT');
    expect(await new Promise((r) => child.once('exit', r))).toBe(0);
    const files = readdirSync(recordDir);
    expect(files).toHaveLength(1);
    const path = join(recordDir, files[0]!);
    const info = await recordingInfo(path);
    expect(info.complete).toBe(true);
    expect(info.streams).toEqual([
      expect.objectContaining({
        streamId: 'mic-7',
        messages: { audio: 100, text: 1 },
        predictions: live.length,
        labelEvents: liveEvents.length,
      }),
    ]);
    // The other labels keep the default thresholds: the untrained model's scores may or may not cross them.
    const speech = liveEvents.filter((e) => e['label'] === 'speech');
    expect(speech.map((e) => [e['label'], e['state'], e['closed']])).toEqual([
      ['speech', 'on', undefined],
      ['speech', 'off', true],
    ]);
    const reader = await RecordingReader.open(path);
    const recordedEvents = [];
    for await (const e of reader.labelEvents()) recordedEvents.push(e);
    await reader.close();
    expect(recordedEvents).toEqual(
      liveEvents.map(({ type: _type, ...e }) => ({ ...e, model: expect.stringMatching(/^model@/) })),
    );
    // What the model said live is in the file, beside the inputs, with the model's id.
    const channel = info.channels.find((c) => c.kind === 'prediction');
    expect(channel).toMatchObject({ topic: '/mic-7/prediction', schema: 'braid.Prediction' });
    expect(channel?.model).toMatch(/^model@[0-9a-f]{12}$/);
    expect(info.metadata['model']).toBe(channel?.model);
    const recorded = [];
    for await (const p of readPredictions(path)) recorded.push(p);
    expect(recorded.map((p) => [p.windowIndex, p.scores, p.model])).toEqual(
      live.map((p) => [p.windowIndex, p.scores, channel?.model]),
    );
  }, 120_000);

  it('serves a recording as a live stream with --replay', async () => {
    const file = join(dir, 'short.mcap');
    const recorder = await McapRecorder.create(file);
    for (let i = 0; i < 300; i++)
      await recorder.write({
        streamId: 'replayed',
        modality: 'audio',
        time: 9_000_000 + i * 10_000,
        seq: i,
        payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(160) },
      });
    await recorder.close();
    const { url } = await serve('--replay', file, '--speed', '4');
    const sub = await connect(url, '/subscribe');
    const box = inbox(sub);
    sub.send(JSON.stringify({ subscribe: ['replayed'] }));
    const predictions = () => box.messages.filter((m) => m.type === 'prediction');
    await box.next(() => predictions().length >= 3, 30_000);
    expect(predictions().every((p) => 'streamId' in p && p.streamId === 'replayed')).toBe(true);
    sub.close();
  }, 120_000);

  it('refuses a --replay that is not a recording before it listens; one damaged part-way closes its stream and serving goes on', async () => {
    const notMcap = join(dir, 'not.mcap');
    writeFileSync(notMcap, 'not an mcap file');
    const refused = spawn(process.execPath, [
      '--import',
      'tsx',
      'src/cli/run.ts',
      'serve',
      '--port',
      '0',
      '--model',
      modelDir,
      '--replay',
      notMcap,
    ]);
    children.push(refused);
    let refusal = '';
    refused.stderr.on('data', (d) => (refusal += String(d)));
    expect(await new Promise((resolve) => refused.once('exit', resolve))).toBe(1);
    expect(refusal).toMatch(/not\.mcap: not an MCAP file/);
    expect(refusal).not.toMatch(/serving on/);

    const file = join(dir, 'damaged.mcap');
    const recorder = await McapRecorder.create(file, { chunkBytes: 16 * 1024 });
    for (let i = 0; i < 600; i++)
      await recorder.write({
        streamId: 'cut-short',
        modality: 'audio',
        time: 9_000_000 + i * 10_000,
        seq: i,
        payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(160).fill(i) },
      });
    await recorder.close();
    const bytes = readFileSync(file);
    // A file cut short (no summary) is served too: its warning is logged once, as braid's, not as a Node warning.
    const cut = join(dir, 'cut-short-copy.mcap');
    const other = await McapRecorder.create(cut, { chunkBytes: 16 * 1024 });
    for (let i = 0; i < 600; i++)
      await other.write({
        streamId: 'truncated-copy',
        modality: 'audio',
        time: 9_000_000 + i * 10_000,
        seq: i,
        payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(160).fill(i) },
      });
    await other.close();
    writeFileSync(cut, readFileSync(cut).subarray(0, Math.floor(bytes.length / 2)));
    const readable = await FileReadable.open(file);
    const chunks = (await McapIndexedReader.Initialize({ readable })).chunkIndexes;
    await readable.close();
    const chunk = chunks[Math.floor(chunks.length / 2)]!;
    const middle = Number(chunk.chunkStartOffset + chunk.chunkLength / 2n);
    for (let i = 0; i < 16; i++) bytes[middle + i] = bytes[middle + i]! ^ 0x5a;
    writeFileSync(file, bytes);
    const { url, log } = await serve('--replay', file, cut, '--speed', '8', '--no-loop');
    const sub = await connect(url, '/subscribe');
    const box = inbox(sub);
    sub.send(JSON.stringify({ subscribe: '*' }));
    await box.next((m) => m.type === 'stream' && m.event === 'closed' && m.streamId === 'cut-short', 30_000);
    expect(log()).toMatch(/replay of .*damaged\.mcap failed: .*damaged file\?/);
    expect(log().match(/"code":"truncated"/g)).toHaveLength(1);
    expect(log()).not.toMatch(/BraidRecordingWarning/);
    expect(box.messages.some((m) => m.type === 'prediction')).toBe(true);
    const health = (await (await fetch(`${url}/healthz`)).json()) as { streams: number };
    expect(health.streams).toBe(0);
    sub.close();
  }, 120_000);

  it('keeps serving when the recording disk fills, and stops cleanly with the failure reported', async (ctx) => {
    // A real full disk: a 256 KiB tmpfs (needs mount rights, which CI's root has; skipped where they are missing).
    const small = mkdtempSync(join(tmpdir(), 'braid-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small], { stdio: 'pipe' });
    } catch (error) {
      console.warn(
        `SKIPPING the full-disk test: cannot mount a tmpfs here (${String(error).split('\n')[0]})`,
      );
      return ctx.skip();
    }
    try {
      const { child, url, log } = await serve('--record', small);
      const sub = await connect(url, '/subscribe');
      const box = inbox(sub);
      sub.send(JSON.stringify({ subscribe: ['full'] }));
      const prod = await connect(url, '/ingest');
      prod.send(
        JSON.stringify({
          type: 'hello',
          version: 1,
          streamId: 'full',
          modalities: ['video'],
          video: { format: 'gray', width: 64, height: 48 },
        }),
      );
      // Noise does not compress: 600 frames of 3 KiB overflow the disk once the first 1 MiB chunk is written.
      const frame = (i: number) =>
        encodeFrame({
          modality: 'video',
          time: 10_000_000 + i * 100_000,
          seq: i,
          payload: randomBytes(64 * 48),
        });
      for (let i = 0; i < 600; i++) prod.send(frame(i));
      await roundTrip(prod);
      await expect
        .poll(log, { timeout: 20_000 })
        .toMatch(/recording failed, the server goes on without it.*ENOSPC/);
      // Still serving: a later window of the same stream is predicted.
      for (let i = 600; i < 620; i++) prod.send(frame(i));
      await box.next((m) => m.type === 'prediction' && m.windowEnd > 10_000_000 + 600 * 100_000, 20_000);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/^braid_recorder_failed 1$/m);
      child.kill('SIGTERM');
      const code = await new Promise((r) => child.once('exit', r));
      expect(log()).toMatch(/recording .* is incomplete .*ENOSPC/);
      expect(log()).not.toMatch(/Uncaught|at .*recorder\.ts|RecordingError:/);
      expect(code).toBe(1);
    } finally {
      execFileSync('umount', ['-l', small]);
    }
  }, 150_000);

  it('refuses to bind beyond loopback without a token', async () => {
    const child = spawn(process.execPath, [
      '--import',
      'tsx',
      'src/cli/run.ts',
      'serve',
      '--host',
      '0.0.0.0',
      '--port',
      '0',
      '--model',
      modelDir,
    ]);
    children.push(child);
    let err = '';
    child.stderr.on('data', (d) => (err += String(d)));
    expect(await new Promise((r) => child.once('exit', r))).toBe(2); // a usage error
    expect(err).toMatch(/--token/);
    // Refused before the model is even loaded.
    expect(err).not.toMatch(/model backend/);
  }, 30_000);

  it('refuses a bad option at once, before the slow start, with exit code 2', async () => {
    const run = (...args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const child = spawn(process.execPath, [
          '--import',
          'tsx',
          'src/cli/run.ts',
          'serve',
          '--model',
          modelDir,
          ...args,
        ]);
        children.push(child);
        let err = '';
        child.stderr.on('data', (d) => (err += String(d)));
        child.once('exit', (code) => resolve({ code, err }));
      });
    const port = await run('--port', 'abc');
    expect(port.code).toBe(2);
    expect(port.err).toMatch(/--port.*port number 0\.\.65535, got "abc"/);
    expect(port.err).not.toMatch(/model backend/);
    const level = await run('--log-level', 'loud');
    expect(level.code).toBe(2);
    expect(level.err).toMatch(/--log-level must be one of error, warn, info, debug/);
  }, 30_000);

  it('takes its options from the environment and its token from a file; logs JSON lines, without tfjs or Dawn noise', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'file-token-123\n');
    const { child, url, log } = await serve(
      '--token-file',
      tokenFile,
      '--log-level',
      'debug',
      '--backend',
      'auto',
    );
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/metrics?token=file-token-123`)).status).toBe(200);
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
    const lines = log().trim().split('\n');
    const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; event?: string });
    expect(records.map((r) => r.event)).toEqual(expect.arrayContaining(['backend', 'serving', 'shutdown']));
    // Backend timings are debug lines (level 20); everything else info or above.
    expect(records.some((r) => r.event === 'backend_timing' && r.level === 20)).toBe(true);
    expect(log()).not.toMatch(/Hi, looks like|XDG_RUNTIME_DIR|Couldn't load Vulkan/);

    // The same from the environment: BRAID_PORT, BRAID_TOKEN, BRAID_BACKEND, BRAID_LOG_FORMAT.
    const envChild = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/run.ts', 'serve', '--model', modelDir],
      {
        env: {
          ...process.env,
          BRAID_PORT: '0',
          BRAID_TOKEN: 'env-token-456',
          BRAID_BACKEND: 'cpu-fused',
          BRAID_LOG_FORMAT: 'pretty',
          BRAID_WORKERS: '2',
        },
      },
    );
    children.push(envChild);
    let err = '';
    const envUrl = await new Promise<string>((resolve, reject) => {
      envChild.stderr.on('data', (d) => {
        err += String(d);
        const m = /serving on (http:\/\/\S+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      envChild.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
    });
    expect(err).toMatch(/INFO: model backend cpu-fused: backend cpu-fused was named \{"event":"backend"/); // pretty, one line a record
    expect(err).toMatch(/INFO: 2 shard threads run the streams \(sharded by stream id\), each on cpu-fused/);
    expect((await fetch(`${envUrl}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${envUrl}/metrics`, { headers: { authorization: 'Bearer env-token-456' } })).status,
    ).toBe(200);
  }, 120_000);
});
