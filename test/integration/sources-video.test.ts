import { execFileSync } from 'node:child_process';
import { firstValueFrom, lastValueFrom, type Observable, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { SourceError } from '../../src/core/errors.js';
import type { SourceEvent } from '../../src/core/events.js';
import { videoSource } from '../../src/sources/video.js';
import { requireTool } from '../helpers/system-tools.js';

const hasFfmpeg = requireTool('ffmpeg');
/** opencv-doc's vtest.avi: 768x576, 10 fps, 795 frames of people walking. */
const VTEST = '/usr/share/doc/opencv-doc/examples/data/vtest.avi';

function ffmpegChildren(): number {
  try {
    const out = execFileSync('ps', ['-o', 'comm=', '--ppid', String(process.pid)], { encoding: 'utf8' });
    return out.split('\n').filter((comm) => comm.trim() === 'ffmpeg').length;
  } catch {
    return 0;
  }
}

async function eventually(check: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function failure(source: Observable<unknown>): Promise<SourceError> {
  try {
    await lastValueFrom(source);
  } catch (error) {
    expect(error).toBeInstanceOf(SourceError);
    return error as SourceError;
  }
  throw new Error('expected the source to fail');
}

const frames = (source: Observable<SourceEvent<'video'>>, n: number) =>
  firstValueFrom(source.pipe(take(n), toArray()));
const meanOf = (data: Uint8Array): number => data.reduce((a, b) => a + b, 0) / data.length;

describe.skipIf(!hasFfmpeg)('videoSource through a real ffmpeg process', () => {
  it('reads a clip in real time like a camera: 64x48 gray frames stamped 100 ms apart from the wall clock', async () => {
    const started = Date.now();
    const events = await frames(
      videoSource({ streamId: 'cam', input: { kind: 'file', path: VTEST, pace: 'realtime' } }),
      6,
    );
    const elapsed = Date.now() - started;
    expect(events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const e of events) {
      expect(e.payload).toMatchObject({ format: 'gray', width: 64, height: 48 });
      expect((e.payload as { data: Uint8Array }).data.byteLength).toBe(64 * 48);
    }
    const origin = events[0]!.time;
    expect(events.map((e) => e.time - origin)).toEqual([0, 1, 2, 3, 4, 5].map((i) => i * 100_000));
    expect(Math.abs(origin / 1000 - started)).toBeLessThan(5_000);
    // Paced by ffmpeg -re: six frames at 10 fps take about half a second of wall time.
    expect(elapsed).toBeGreaterThanOrEqual(400);
    await eventually(() => ffmpegChildren() === 0);
  });

  it('reads as fast as possible with deterministic stamps and bytes', async () => {
    const source = videoSource({ streamId: 'f', input: { kind: 'file', path: VTEST } });
    const first = await frames(source, 20);
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
