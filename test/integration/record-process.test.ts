import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/index.js';
import { RecordingReader, type RecordingWarning } from '../../src/record/index.js';

// These tests run braid in a child process of its own (tsx), as `braid record` would run: one is killed with
// SIGKILL mid-recording, the other measures the event loop without vitest's machinery around it.

const T0 = 1_000_000_000;
const recordModule = pathToFileURL(resolve('src/record/index.ts')).href;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'braid-process-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a child script into the temp dir and starts it with tsx from the repository root. */
function startChild(name: string, source: string, args: string[]): ChildProcess {
  const script = join(dir, name);
  writeFileSync(script, source);
  return spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolveLine, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += String(d)));
    child.stdout!.on('data', (d) => {
      out += String(d);
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line) resolveLine(line);
    });
    child.on('exit', (code) =>
      reject(new Error(`child exited (${code}) before "${pattern}": ${out}\n${err}`)),
    );
  });
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
const text = (i: number): AnySourceEvent => ({
  streamId: 'mic',
  modality: 'text',
  time: T0 + i * 100_000,
  seq: i,
  payload: { text: `line ${i}` },
});

const RECORDING_CHILD = `
import { McapRecorder } from '${recordModule}';
const T0 = ${T0};
const audio = ${audio.toString()};
const text = ${text.toString()};
const recorder = await McapRecorder.create(process.argv[2], { chunkBytes: 4096 });
for (let i = 0; ; i += 1) {
  await recorder.write(audio(i));
  if (i % 10 === 0) await recorder.write(text(i / 10));
  if (i % 250 === 249) {
    process.stdout.write('wrote ' + (i + 1) + '\\n');
    await new Promise((r) => setImmediate(r));
  }
}
`;

describe('a recording killed with SIGKILL', () => {
  it('is readable up to its last complete chunk, and says how far it got', async () => {
    const path = join(dir, 'killed.mcap');
    const child = startChild('record-forever.mts', RECORDING_CHILD, [path]);
    await waitForLine(child, /^wrote 1500$/);
    const exited = new Promise((r) => child.on('exit', (_code, signal) => r(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const warnings: RecordingWarning[] = [];
    const reader = await RecordingReader.open(path, { onWarning: (w) => warnings.push(w) });
    const events: AnySourceEvent[] = [];
    for await (const e of reader.events()) events.push(e);
    await reader.close();

    const audioRead = events.filter((e) => e.modality === 'audio');
    const textRead = events.filter((e) => e.modality === 'text');
    // Written with awaits, so at least everything but the open chunk (a few dozen events) is on disk.
    expect(audioRead.length).toBeGreaterThan(1400);
    expect(audioRead).toEqual(audioRead.map((_, i) => audio(i)));
    expect(textRead).toEqual(textRead.map((_, i) => text(i)));
    expect(reader.info.complete).toBe(false);
    expect(warnings.map((w) => w.code)).toEqual(['truncated']);
    const last = events.at(-1)!;
    expect(warnings[0]!.message).toContain(`up to log time ${last.time} µs`);
  });
});

const REPLAY_CHILD = `
import { McapRecorder, replayRecording } from '${recordModule}';
const path = process.argv[2];
// One chunk holding everything: once it is read, only the replay's own pauses let timers run.
// Every write is queued at once: the write queue's default bound (10 000) would refuse two thirds of them.
const recorder = await McapRecorder.create(path, { chunkBytes: 64 * 1024 * 1024, maxPendingWrites: 100_000 });
for (let s = 0; s < 200; s += 1)
  for (let i = 0; i < 150; i += 1)
    void recorder.write({ streamId: 's' + s, modality: 'text', time: 1000 + i * 1000, seq: i, payload: { text: 'x'.repeat(200) } });
await recorder.close();
let longest = 0;
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  longest = Math.max(longest, now - last);
  last = now;
}, 1);
let started = 0;
let events = 0;
replayRecording(path, { speed: 'max' }).subscribe({
  next: () => {
    // From the first event on: reading and decompressing the chunk before it is one stall the replay cannot split.
    if (events++ === 0) {
      started = performance.now();
      last = started;
      longest = 0;
    }
  },
  complete: () => {
    clearInterval(timer);
    process.stdout.write(JSON.stringify({ events, elapsed: performance.now() - started, longest }) + '\\n');
  },
});
`;

const START_CHILD = `
import { existsSync } from 'node:fs';
import { McapRecorder } from '${recordModule}';
const path = process.argv[2];
try {
  await McapRecorder.create(path);
  process.stdout.write('created\\n');
} catch (error) {
  process.stdout.write(JSON.stringify({ message: error.message, exists: existsSync(path) }) + '\\n');
}
`;

describe('a recording whose header cannot be written', () => {
  it('fails with the disk error and leaves no partial file behind', async () => {
    const path = join(dir, 'too-large.mcap');
    // RLIMIT_FSIZE 0: the file can be created but not one byte written to it (EFBIG; Node ignores SIGXFSZ).
    const script = join(dir, 'start-only.mts');
    writeFileSync(script, START_CHILD);
    const child = spawn(
      'sh',
      ['-c', 'ulimit -f 0; exec "$0" "$@"', process.execPath, '--import', 'tsx', script, path],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TSX_DISABLE_CACHE: '1' },
      },
    );
    const line = await waitForLine(child, /^\{/);
    const result = JSON.parse(line) as { message: string; exists: boolean };
    expect(result.message).toMatch(/too-large\.mcap: cannot start the recording: EFBIG/);
    expect(result.exists).toBe(false);
    expect(existsSync(path)).toBe(false);
  }, 30_000);
});

describe("replay at 'max' speed", () => {
  it('keeps the event loop turning while it decodes a large chunk', async () => {
    const child = startChild('replay-max.mts', REPLAY_CHILD, [join(dir, 'one-chunk.mcap')]);
    const line = await waitForLine(child, /^\{/);
    const { events, elapsed, longest } = JSON.parse(line) as {
      events: number;
      elapsed: number;
      longest: number;
    };
    expect(events).toBe(30_000);
    // Decoding and handing on 30 000 events takes far longer than one pause; no stretch of it may hold the loop
    // for long (the chunk's own read and decompression, before the first event, is not counted).
    expect(elapsed).toBeGreaterThan(30);
    expect(longest).toBeLessThan(elapsed / 2);
  }, 60_000);
});
