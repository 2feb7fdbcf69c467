import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, take, tap, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/core/errors.js';
import type { SourceEvent } from '../../src/core/events.js';
import { audioStreamFailure, microphoneSource } from '../../src/sources/microphone.js';
import { eventually, failure } from '../helpers/source-assertions.js';
import { requireTool } from '../helpers/system-tools.js';

/**
 * Real arecord and sox processes recording from an ALSA PCM. CI machines have no sound card, so the PCM is ALSA's
 * `file` plugin reading a real speech clip (the features fixture) in place of a microphone, declared in a private
 * ALSA config (ALSA_CONFIG_PATH). Its null slave is not clocked, so the "microphone" delivers faster than real time;
 * stamps come from sample counts either way. A second PCM reads a FIFO the test writes: a device that has captured
 * exactly what was written, no more, so the test can see how much the recorder holds back before handing it over.
 */
const hasRecorders = requireTool('arecord') && requireTool('sox');

const speech = readFileSync(new URL('../fixtures/features/speech-16k.s16le', import.meta.url));
const speechSamples = new Int16Array(speech.buffer, speech.byteOffset, speech.byteLength / 2);

let dir = '';
const savedConfigPath = process.env['ALSA_CONFIG_PATH'];

function alsaConfig(mono: string, stereo: string, fifo: string): string {
  // A plug over each file keeps the file's own format, so the file plugin reads it byte for byte.
  return `
pcm.braid_fifo_file { type file slave.pcm { type null } file "/dev/null" infile "${fifo}" format "raw" }
pcm.braid_fifo { type plug slave { pcm "braid_fifo_file" format S16_LE rate 16000 channels 1 } }
pcm.braid_mono_file { type file slave.pcm { type null } file "/dev/null" infile "${mono}" format "raw" }
pcm.braid_mono { type plug slave { pcm "braid_mono_file" format S16_LE rate 16000 channels 1 } }
pcm.braid_stereo_file { type file slave.pcm { type null } file "/dev/null" infile "${stereo}" format "raw" }
pcm.braid_stereo { type plug slave { pcm "braid_stereo_file" format S16_LE rate 16000 channels 2 } }
`;
}

beforeAll(() => {
  if (!hasRecorders) return;
  dir = mkdtempSync(join(tmpdir(), 'braid-mic-'));
  const stereo = new Int16Array(speechSamples.length * 2);
  for (let i = 0; i < speechSamples.length; i++) stereo.fill(speechSamples[i]!, 2 * i, 2 * i + 2);
  writeFileSync(join(dir, 'mono.raw'), speech);
  writeFileSync(join(dir, 'stereo.raw'), new Uint8Array(stereo.buffer));
  writeFileSync(
    join(dir, 'asound.conf'),
    alsaConfig(join(dir, 'mono.raw'), join(dir, 'stereo.raw'), join(dir, 'mic.fifo')),
  );
  process.env['ALSA_CONFIG_PATH'] = join(dir, 'asound.conf');
});

afterAll(() => {
  if (savedConfigPath === undefined) delete process.env['ALSA_CONFIG_PATH'];
  else process.env['ALSA_CONFIG_PATH'] = savedConfigPath;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Child processes of this test process running `program`. */
function children(program: string): number[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  } catch (error) {
    // procps' ps exits 1, printing nothing, when no process matches: no children. Anything else is a failure.
    const { status, stdout } = error as { status?: number; stdout?: string };
    if (status === 1 && !stdout) return [];
    throw error;
  }
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, comm]) => comm === program)
    .map(([pid]) => Number(pid));
}

const concat = (events: SourceEvent<'audio'>[]): Int16Array => {
  const out = new Int16Array(events.reduce((n, e) => n + e.payload.samples.length, 0));
  let offset = 0;
  for (const e of events) {
    out.set(e.payload.samples, offset);
    offset += e.payload.samples.length;
  }
  return out;
};

describe.skipIf(!hasRecorders)('microphoneSource (real recorder processes)', () => {
  it('arecord: 20 ms frames of the recorded speech, byte for byte, stamped by sample count', async () => {
    const before = Date.now() * 1000;
    let running = -1;
    const events = await firstValueFrom(
      microphoneSource({ streamId: 'mic', recorder: 'arecord', device: 'braid_mono' }).pipe(
        tap(() => {
          if (running < 0) running = children('arecord').length;
        }),
        take(60),
        toArray(),
      ),
    );
    // The recorder existed while subscribed, so its absence at the end means it was reaped.
    expect(running).toBe(1);
    expect(events.map((e) => e.seq)).toEqual([...Array(60).keys()]);
    for (const e of events) expect(e.payload).toMatchObject({ sampleRate: 16_000, channels: 1 });
    expect(events.every((e) => e.payload.samples.length === 320)).toBe(true);
    expect(concat(events)).toEqual(speechSamples.subarray(0, 60 * 320));
    const origin = events[0]!.time;
    expect(events.map((e) => e.time - origin)).toEqual(events.map((_, i) => i * 20_000));
    // The first sample is placed on the wall clock: before the first chunk arrived, not long before we started.
    expect(origin).toBeGreaterThan(before - 10_000_000);
    expect(origin).toBeLessThanOrEqual(Date.now() * 1000);
    await eventually(() => children('arecord').length === 0);
  });

  it('sox: the same speech through the default-device path (AUDIODEV), 10 ms frames', async () => {
    let running = -1;
    const events = await firstValueFrom(
      microphoneSource({ streamId: 'mic', recorder: 'sox', device: 'braid_stereo', frameMs: 10 }).pipe(
        tap(() => {
          if (running < 0) running = children('sox').length;
        }),
        take(100),
        toArray(),
      ),
    );
    expect(running).toBe(1);
    expect(events.every((e) => e.payload.samples.length === 160)).toBe(true);
    const got = concat(events);
    // sox opens the device in stereo, mixes to mono and dithers: within one step of the recorded samples.
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - speechSamples[i]!));
    expect(worst).toBeLessThanOrEqual(1);
    expect(events[99]!.time - events[0]!.time).toBe(990_000);
    await eventually(() => children('sox').length === 0);
  });

  it('a missing recorder program is a SourceError naming it, not a hang or a crash', async () => {
    const path = process.env['PATH'];
    process.env['PATH'] = join(dir, 'no-programs-here');
    try {
      const error = await failure(microphoneSource({ streamId: 'mic', recorder: 'arecord' }));
      expect(error.message).toMatch(/^arecord not found: is it installed and on PATH\?/);
    } finally {
      process.env['PATH'] = path;
    }
  });

  it('a device that cannot be opened ends the stream with the recorder’s own error', async () => {
    const error = await failure(
      microphoneSource({ streamId: 'mic', recorder: 'arecord', device: 'braid_nosuch' }),
    );
    expect(error.message).toMatch(/^arecord exited with code 1: .*braid_nosuch/);
  });

  it('a recorder that dies mid-stream ends it with a SourceError', async () => {
    const source = microphoneSource({ streamId: 'mic', recorder: 'arecord', device: 'braid_mono' });
    let frames = 0;
    const error = await new Promise<unknown>((resolve) => {
      source.subscribe({
        next: () => {
          if (++frames !== 1) return;
          const pids = children('arecord');
          expect(pids).toHaveLength(1);
          for (const pid of pids) process.kill(pid, 'SIGKILL');
        },
        error: resolve,
        complete: () => resolve(new Error('completed')),
      });
    });
    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toMatch(/^arecord was killed by SIGKILL/);
    await eventually(() => children('arecord').length === 0);
  });

  it('a recorder that stops delivering fails after noDataTimeoutMs and is killed and reaped', async () => {
    const source = microphoneSource({
      streamId: 'mic',
      recorder: 'arecord',
      device: 'braid_mono',
      noDataTimeoutMs: 300,
      killGraceMs: 200,
    });
    let stopped = false;
    const error = await new Promise<unknown>((resolve) => {
      source.subscribe({
        next: () => {
          if (stopped) return;
          stopped = true;
          const pids = children('arecord');
          expect(pids).toHaveLength(1);
          for (const pid of pids) process.kill(pid, 'SIGSTOP');
        },
        error: resolve,
        complete: () => resolve(new Error('completed')),
      });
    });
    expect((error as Error).message).toMatch(/^arecord delivered no audio from braid_mono for 300 ms/);
    // SIGTERM cannot reach a stopped process; the SIGKILL after the grace period does.
    await eventually(() => children('arecord').length === 0);
  });

  // Each 20 ms the device captures is written to the FIFO only once the frame before it has come out: a recorder
  // that waits for more than a frame before handing audio over (arecord's 125 ms periods, sox's 4 KiB stdio
  // buffer: 128 ms) never delivers, or pads the frame from ALSA's null slave with samples nobody wrote.
  for (const recorder of ['arecord', 'sox'] as const)
    it(`${recorder}: hands each frame over as soon as the device has captured it`, async () => {
      const fifo = join(dir, 'mic.fifo');
      rmSync(fifo, { force: true });
      execFileSync('mkfifo', [fifo]);
      // Read-write, so opening never waits for the recorder and a recorder that fails cannot hang the test.
      const fd = openSync(fifo, 'r+');
      const frames = 25;
      const written = new Int16Array(frames * 320).map((_, i) => speechSamples[i]!);
      const writeFrame = (k: number) => writeSync(fd, new Uint8Array(written.buffer, k * 640, 640));
      try {
        writeFrame(0);
        const events = await firstValueFrom(
          microphoneSource({ streamId: 'mic', recorder, device: 'braid_fifo' }).pipe(
            tap((e) => {
              if (e.seq + 1 < frames) writeFrame(e.seq + 1);
            }),
            take(frames),
            toArray(),
          ),
        );
        expect(events.every((e) => e.payload.samples.length === 320)).toBe(true);
        const got = concat(events);
        // arecord passes the samples through; sox dithers: within one step.
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - written[i]!));
        expect(worst).toBeLessThanOrEqual(recorder === 'sox' ? 1 : 0);
        await eventually(() => children(recorder).length === 0);
      } finally {
        closeSync(fd);
      }
    });

  it('sox under stdbuf that cannot find sox is a SourceError naming sox', async () => {
    const only = join(dir, 'only-stdbuf');
    mkdirSync(only, { recursive: true });
    rmSync(join(only, 'stdbuf'), { force: true });
    symlinkSync(
      execFileSync('sh', ['-c', 'command -v stdbuf'], { encoding: 'utf8' }).trim(),
      join(only, 'stdbuf'),
    );
    const path = process.env['PATH'];
    process.env['PATH'] = only;
    try {
      const error = await failure(microphoneSource({ streamId: 'mic', recorder: 'sox' }));
      expect(error.message).toMatch(/^sox not found: is it installed and on PATH\? \(stdbuf: /);
    } finally {
      process.env['PATH'] = path;
    }
  });

  it('rejects bad options naming them', () => {
    expect(() => microphoneSource({ streamId: 'mic', frameMs: 30 })).toThrow(/option "frameMs"/);
    expect(() => microphoneSource({ streamId: 'mic', recorder: 'parec' as 'sox' })).toThrow(
      /option "recorder"/,
    );
    expect(() => microphoneSource({ streamId: 'mic', recorder: 'rec', device: 'hw:1' })).toThrow(
      /option "device"/,
    );
  });
});

describe('errors on the recorder audio stream', () => {
  it('end the stream with a SourceError naming the recorder and the cause', () => {
    const pipe = Object.assign(new Error('read EIO'), { code: 'EIO' });
    const failure = audioStreamFailure('sox', pipe);
    expect(failure).toBeInstanceOf(SourceError);
    expect(failure.message).toBe('sox audio stream failed: read EIO');
    expect(failure.cause).toBe(pipe);
  });
});
