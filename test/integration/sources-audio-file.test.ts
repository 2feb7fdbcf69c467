import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, lastValueFrom, type Observable, take, tap, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/core/errors.js';
import { capturedThrough, type SourceEvent } from '../../src/core/events.js';
import { wallClockMicros } from '../../src/core/time.js';
import { audioFileSource } from '../../src/sources/audio-file.js';
import { REALTIME_FILE_PREROLL } from '../../src/sources/capture-pacing.js';
import { requireTool } from '../helpers/system-tools.js';

const hasTools = requireTool('ffmpeg') && requireTool('sox');
const SPEECH_8K = '/usr/share/asterisk/sounds/en/conf-onlyperson.wav';
const fixture = readFileSync(new URL('../fixtures/features/speech-16k.s16le', import.meta.url));
const fixtureSamples = new Int16Array(fixture.buffer, fixture.byteOffset, fixture.byteLength / 2);

let dir = '';
let tone44k = '';
beforeAll(() => {
  if (!hasTools) return;
  dir = mkdtempSync(join(tmpdir(), 'braid-audio-'));
  tone44k = join(dir, 'tone-44k-stereo.flac');
  // A real 44.1 kHz stereo FLAC: 1 kHz sine at half scale for one second.
  execFileSync('sox', [
    '-n',
    '-r',
    '44100',
    '-c',
    '2',
    '-b',
    '16',
    tone44k,
    'synth',
    '1',
    'sine',
    '1000',
    'vol',
    '0.5',
  ]);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const all = <T>(source: Observable<T>): Promise<T[]> => lastValueFrom(source.pipe(toArray()));
const samplesOf = (events: SourceEvent<'audio'>[]): Int16Array => {
  const out = new Int16Array(events.reduce((n, e) => n + e.payload.samples.length, 0));
  let offset = 0;
  for (const e of events) {
    out.set(e.payload.samples, offset);
    offset += e.payload.samples.length;
  }
  return out;
};

describe.skipIf(!hasTools)('audioFileSource through a real ffmpeg process', () => {
  it('resamples 8 kHz speech to 16 kHz mono 20 ms events stamped by sample count from 0', async () => {
    const events = await all(audioFileSource({ streamId: 'a', path: SPEECH_8K }));
    const samples = samplesOf(events);
    // The fixture was made by the same ffmpeg command line (scripts/make-feature-fixtures.py).
    expect(samples.length).toBe(fixtureSamples.length);
    let worst = 0;
    for (let i = 0; i < samples.length; i++)
      worst = Math.max(worst, Math.abs(samples[i]! - fixtureSamples[i]!));
    expect(worst).toBeLessThanOrEqual(4);
    expect(events.slice(0, -1).every((e) => e.payload.samples.length === 320)).toBe(true);
    expect(events.at(-1)!.payload.samples.length).toBe(samples.length - 320 * (events.length - 1));
    expect(events.map((e) => e.time)).toEqual(events.map((_, i) => i * 20_000));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
  });

  it('mixes 44.1 kHz stereo down and keeps the tone’s pitch and level', async () => {
    const events = await all(
      audioFileSource({ streamId: 'a', path: tone44k, frameMs: 10, origin: 5_000_000 }),
    );
    const samples = samplesOf(events);
    expect(Math.abs(samples.length - 16_000)).toBeLessThanOrEqual(1);
    expect(events[1]!.time).toBe(5_010_000);
    let crossings = 0;
    for (let i = 1; i < samples.length; i++) if (samples[i - 1]! < 0 && samples[i]! >= 0) crossings++;
    expect(Math.abs(crossings - 1000)).toBeLessThanOrEqual(2);
    const middle = samples.subarray(4000, 12_000);
    const peak = middle.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(Math.abs(peak - 16_384)).toBeLessThan(400);
  });

  it('paces a real-time file like a microphone: each frame handed over once its last sample is due', async () => {
    const started = wallClockMicros();
    const received: number[] = [];
    const events = await firstValueFrom(
      audioFileSource({ streamId: 'a', path: SPEECH_8K, pace: 'realtime' }).pipe(
        take(30),
        tap(() => received.push(wallClockMicros())),
        toArray(),
      ),
    );
    // The first sample is "captured" a pre-roll after the subscription (ffmpeg's start-up fits inside it).
    const origin = events[0]!.time;
    expect(origin - started).toBeGreaterThanOrEqual(REALTIME_FILE_PREROLL);
    expect(origin - started).toBeLessThan(REALTIME_FILE_PREROLL + 200_000);
    expect(events[29]!.time - origin).toBe(29 * 20_000);
    // Never before its end, as a recorder reading one frame at a time delivers it (not ffmpeg -re's packets).
    for (const [i, e] of events.entries()) expect(received[i]).toBeGreaterThanOrEqual(capturedThrough(e));
  });

  it('a missing file or a file without audio fails with ffmpeg’s message', async () => {
    const failure = async (path: string): Promise<string> => {
      try {
        await all(audioFileSource({ streamId: 'a', path }));
      } catch (error) {
        expect(error).toBeInstanceOf(SourceError);
        return (error as Error).message;
      }
      throw new Error('expected a SourceError');
    };
    expect(await failure('/nonexistent/speech.wav')).toMatch(
      /^ffmpeg exited with code 1: .*No such file or directory/,
    );
    expect(await failure('/usr/share/doc/opencv-doc/examples/data/vtest.avi')).toMatch(
      /^ffmpeg exited with code 1: .*matches no streams/,
    );
  });

  it('a frameSamplesAt that throws ends the source with its error, not the process', async () => {
    const broken = new Error('no grid for this stream');
    const error = await all(
      audioFileSource({
        streamId: 'a',
        path: SPEECH_8K,
        frameSamplesAt: () => {
          throw broken;
        },
      }),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBe(broken);
  });
});

describe('audioFileSource when the PCM stops inside a sample', () => {
  it('emits the whole samples, then fails with a SourceError counting the stray byte', async () => {
    // Real ffmpeg never ends s16le output on an odd byte; a shell script standing in for it does.
    const scratch = mkdtempSync(join(tmpdir(), 'braid-audio-odd-'));
    try {
      const ffmpeg = join(scratch, 'odd-ffmpeg.sh');
      writeFileSync(ffmpeg, "#!/bin/sh\nprintf '\\001\\000\\002\\000\\003'\n");
      chmodSync(ffmpeg, 0o755);
      const events: SourceEvent<'audio'>[] = [];
      const error = await new Promise<unknown>((resolve) =>
        audioFileSource({ streamId: 'a', path: 'unused.wav', ffmpeg }).subscribe({
          next: (e) => events.push(e),
          error: resolve,
          complete: () => resolve('completed'),
        }),
      );
      expect(events.map((e) => Array.from(e.payload.samples))).toEqual([[1, 2]]);
      expect(error).toBeInstanceOf(SourceError);
      expect((error as Error).message).toBe(
        'ffmpeg output ended inside a sample: 1 stray byte(s) after the last whole PCM16 sample (truncated output?)',
      );
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
