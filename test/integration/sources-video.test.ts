import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, lastValueFrom, type Observable, take, tap, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceEvent } from '../../src/core/events.js';
import { wallClockMicros } from '../../src/core/time.js';
import { REALTIME_FILE_PREROLL } from '../../src/sources/capture-pacing.js';
import { MAX_UNPAIRED_FRAMES, videoSource } from '../../src/sources/video.js';
import { eventually, failure } from '../helpers/source-assertions.js';
import { requireTool } from '../helpers/system-tools.js';

const hasFfmpeg = requireTool('ffmpeg');
/** opencv-doc's vtest.avi: 768x576, 10 fps, 795 frames of people walking. */
const VTEST = '/usr/share/doc/opencv-doc/examples/data/vtest.avi';

/** ffmpeg processes that are children of this test process. */
function ffmpegChildren(): number {
  let out: string;
  try {
    out = execFileSync('ps', ['-o', 'comm=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  } catch (error) {
    // procps' ps exits 1, printing nothing, when no process matches: no children at all. Anything else is a failure.
    const { status, stdout } = error as { status?: number; stdout?: string };
    if (status === 1 && !stdout) return 0;
    throw error;
  }
  return out.split('\n').filter((comm) => comm.trim() === 'ffmpeg').length;
}

/** Takes `n` events, counting the ffmpeg children alive when the first one arrives. */
async function framesWhileRunning(source: Observable<SourceEvent<'video'>>, n: number) {
  let running = -1;
  const events = await firstValueFrom(
    source.pipe(
      tap(() => {
        if (running < 0) running = ffmpegChildren();
      }),
      take(n),
      toArray(),
    ),
  );
  return { events, running };
}

const frames = (source: Observable<SourceEvent<'video'>>, n: number) =>
  firstValueFrom(source.pipe(take(n), toArray()));
const meanOf = (data: Uint8Array): number => data.reduce((a, b) => a + b, 0) / data.length;

describe.skipIf(!hasFfmpeg)('videoSource through a real ffmpeg process', () => {
  it('reads a clip in real time like a camera: 64x48 gray frames 100 ms apart, each handed over at its time', async () => {
    const started = wallClockMicros();
    const received: number[] = [];
    const { events, running } = await framesWhileRunning(
      videoSource({ streamId: 'cam', input: { kind: 'file', path: VTEST, pace: 'realtime' } }).pipe(
        tap(() => received.push(wallClockMicros())),
      ),
      6,
    );
    // The process existed while subscribed, so its absence afterwards means it was reaped.
    expect(running).toBe(1);
    expect(events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const e of events) {
      expect(e.payload).toMatchObject({ format: 'gray', width: 64, height: 48 });
      expect((e.payload as { data: Uint8Array }).data.byteLength).toBe(64 * 48);
    }
    const origin = events[0]!.time;
    expect(events.map((e) => e.time - origin)).toEqual([0, 1, 2, 3, 4, 5].map((i) => i * 100_000));
    // The first frame is "captured" a pre-roll after the subscription (ffmpeg's start-up fits inside it), and none
    // is handed over before its time, so six frames at 10 fps take the pre-roll and half a second.
    expect(origin - started).toBeGreaterThanOrEqual(REALTIME_FILE_PREROLL);
    expect(origin - started).toBeLessThan(REALTIME_FILE_PREROLL + 200_000);
    for (const [i, e] of events.entries()) expect(received[i]).toBeGreaterThanOrEqual(e.time);
    await eventually(() => ffmpegChildren() === 0);
  });

  it('plays a clip with a still longer than the no-data timeout in real time: ffmpeg waiting it out is not silence', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'braid-still-'));
    try {
      // 10 frames at 10 fps, then 4 s with no new frame, then 5 more (a screen recording, variable frame rate).
      const clip = join(dir, 'still.mkv');
      const input = ['-f', 'lavfi', '-t', '1.5', '-i', 'testsrc=size=64x48:rate=10'];
      const still = ['-vf', "setpts='if(gte(N,10),PTS+4/TB,PTS)'", '-fps_mode', 'passthrough'];
      execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...input, ...still, clip]);
      const events = await lastValueFrom(
        videoSource({
          streamId: 'still',
          input: { kind: 'file', path: clip, pace: 'realtime' },
          noDataTimeoutMs: 2_500,
        }).pipe(toArray()),
      );
      const origin = events[0]!.time;
      expect(events.map((e) => (e.time - origin) / 100_000)).toEqual([
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 50, 51, 52, 53, 54,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('reads as fast as possible with deterministic stamps and bytes', async () => {
    const source = videoSource({ streamId: 'f', input: { kind: 'file', path: VTEST } });
    const { events: first, running } = await framesWhileRunning(source, 20);
    expect(running).toBe(1);
    const second = await frames(source, 20);
    expect(first.map((e) => e.time)).toEqual([...Array(20).keys()].map((i) => i * 100_000));
    expect(second.map((e) => e.time)).toEqual(first.map((e) => e.time));
    expect(second.map((e) => e.payload)).toEqual(first.map((e) => e.payload));
    const data = first.map((e) => (e.payload as { data: Uint8Array }).data);
    // A real street scene: mid-grey on average (ffmpeg's showinfo says 121 for frame 0), and people move.
    expect(meanOf(data[0]!)).toBeGreaterThan(100);
    expect(meanOf(data[0]!)).toBeLessThan(140);
    expect(data[19]).not.toEqual(data[0]);
    await eventually(() => ffmpegChildren() === 0);
  });

  it('resamples to a requested frame rate and size, in rgb, with a chosen origin', async () => {
    const events = await frames(
      videoSource({
        streamId: 'f',
        input: { kind: 'file', path: VTEST, fps: 5 },
        width: 32,
        height: 24,
        pixelFormat: 'rgb',
        origin: 1_000_000,
      }),
      4,
    );
    expect(events.map((e) => e.time)).toEqual([1_000_000, 1_200_000, 1_400_000, 1_600_000]);
    expect(events[0]!.payload).toMatchObject({ format: 'rgb', width: 32, height: 24 });
    expect((events[0]!.payload as { data: Uint8Array }).data.byteLength).toBe(32 * 24 * 3);
  });

  it('completes at the end of a file', async () => {
    const tail = await lastValueFrom(
      videoSource({ streamId: 'f', input: { kind: 'file', path: VTEST, fps: 2 }, width: 8, height: 6 }).pipe(
        toArray(),
      ),
    );
    // 79.5 s at 2 fps.
    expect(tail.length).toBeGreaterThanOrEqual(159);
    expect(tail.length).toBeLessThanOrEqual(160);
  });

  it('a missing file fails with ffmpeg’s own message', async () => {
    const error = await failure(
      videoSource({ streamId: 'f', input: { kind: 'file', path: '/nonexistent/clip.avi' } }),
    );
    expect(error.message).toMatch(
      /^ffmpeg exited with code 1: .*\/nonexistent\/clip\.avi: No such file or directory/,
    );
  });

  it('a camera that does not exist fails with ffmpeg’s v4l2 message, not a hang', async () => {
    const error = await failure(
      videoSource({
        streamId: 'cam',
        input: { kind: 'camera', inputFormat: 'v4l2', device: '/dev/video-braid-none', fps: 15 },
      }),
    );
    expect(error.message).toMatch(/^ffmpeg exited with code 1: .*\/dev\/video-braid-none/);
  });

  it('a missing ffmpeg program is named', async () => {
    const error = await failure(
      videoSource({ streamId: 'f', input: { kind: 'file', path: VTEST }, ffmpeg: '/nonexistent/bin/ffmpeg' }),
    );
    expect(error.message).toMatch(/^ffmpeg not found: is it installed and on PATH\?/);
  });
});

/**
 * Output real ffmpeg never gives (showinfo lines out of step with the frames, a pts that is not a number, frames with
 * no lines at all): a shell script stands in for ffmpeg and writes exactly that, through the same child process path.
 */
describe('videoSource when frames and showinfo lines do not pair up', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'braid-video-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const FRAME = 64 * 48;
  const line = (n: string | number, pts: string | number) =>
    `printf '[Parsed_showinfo_3 @ 0x1] n:%4s pts:%7s pts_time:0 fmt:gray\\n' '${n}' '${pts}' >&2`;
  /** A stand-in ffmpeg running `body`, then waiting to be killed (exec: no orphaned sleep). */
  function standIn(name: string, body: string[]): string {
    const path = join(dir, name);
    writeFileSync(path, ['#!/bin/sh', ...body, 'exec sleep 30', ''].join('\n'));
    chmodSync(path, 0o755);
    return path;
  }
  const source = (ffmpeg: string) =>
    videoSource({ streamId: 'f', input: { kind: 'file', path: 'unused.avi' }, ffmpeg, killGraceMs: 200 });

  it('fails when a showinfo line is numbered out of step', async () => {
    const ffmpeg = standIn('skips.sh', [line(0, 0), line(2, 100000), `head -c ${2 * FRAME} /dev/zero`]);
    const error = await failure(source(ffmpeg));
    expect(error.message).toBe(
      'ffmpeg showinfo numbered a frame n:2 where frame 1 was expected: frames and timestamps no longer pair up',
    );
  });

  it('fails on a pts that is not a whole number', async () => {
    const ffmpeg = standIn('nopts.sh', [line(0, 'NOPTS'), `head -c ${FRAME} /dev/zero`]);
    expect((await failure(source(ffmpeg))).message).toMatch(
      /frame 0 the timestamp "NOPTS", not a whole number/,
    );
  });

  it('fails, instead of holding frames without end, when frames come with no showinfo lines', async () => {
    const ffmpeg = standIn('no-lines.sh', [`head -c ${(MAX_UNPAIRED_FRAMES + 6) * FRAME} /dev/zero`]);
    expect((await failure(source(ffmpeg))).message).toMatch(
      /^ffmpeg sent \d+ frames without a showinfo timestamp \(at most 64 may wait\)/,
    );
  });

  it('fails when showinfo lines come with no frames', async () => {
    const lines = Array.from({ length: MAX_UNPAIRED_FRAMES + 1 }, (_, i) => line(i, i * 100000));
    const ffmpeg = standIn('no-frames.sh', lines);
    expect((await failure(source(ffmpeg))).message).toMatch(
      /^ffmpeg sent 65 showinfo timestamps without a frame/,
    );
  });

  it('stamps frames whose lines are numbered in step', async () => {
    const ffmpeg = standIn('good.sh', [line(0, 5), line(1, 40005), `head -c ${2 * FRAME} /dev/zero`]);
    const events = await frames(source(ffmpeg), 2);
    expect(events.map((e) => e.time)).toEqual([0, 40_000]);
  });
});
