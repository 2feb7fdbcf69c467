import { Subject, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/events.js';
import { releaseAtCaptureTime } from '../../src/sources/capture-pacing.js';

const audio = (time: number, samples = 320): AnySourceEvent => ({
  streamId: 's',
  modality: 'audio',
  time,
  seq: time,
  payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(samples) },
});
const video = (time: number): AnySourceEvent => ({
  streamId: 's',
  modality: 'video',
  time,
  seq: time,
  payload: { format: 'gray', width: 2, height: 1, data: new Uint8Array(2) },
});

/** A source paced from capture time `origin` = wall time `start`, on a virtual clock in ms (µs = ms × 1000). */
function paced(origin: number, start: number) {
  const scheduler = new VirtualTimeScheduler();
  const clock = () => scheduler.now() * 1000;
  const input$ = new Subject<AnySourceEvent>();
  const got: { at: number; time: number }[] = [];
  const end: string[] = [];
  const subscription = input$.pipe(releaseAtCaptureTime({ origin, start, clock }, scheduler)).subscribe({
    next: (e) => got.push({ at: clock(), time: e.time }),
    error: (e: Error) => end.push(`error at ${clock()}: ${e.message}`),
    complete: () => end.push(`complete at ${clock()}`),
  });
  /** Runs the virtual clock to `ms` (a burst of events arriving then is pushed with `at`). */
  const runTo = (ms: number) => {
    scheduler.maxFrames = ms;
    scheduler.flush();
    if (scheduler.now() < ms) scheduler.frame = ms;
  };
  return { input$, got, end, runTo, subscription, scheduler };
}

describe('releaseAtCaptureTime: a file played as a device hands each frame over when it is captured', () => {
  it("holds a burst of audio frames until each one's last sample is due, in order", () => {
    // ffmpeg -re: a 100 ms packet arrives at its start, wall time 1 s; the stream's capture time 0 is wall time 1 s.
    const p = paced(0, 1_000_000);
    p.runTo(1000);
    for (let t = 0; t < 100_000; t += 20_000) p.input$.next(audio(t));
    expect(p.got).toEqual([]);
    p.runTo(1200);
    expect(p.got).toEqual([
      { at: 1_020_000, time: 0 },
      { at: 1_040_000, time: 20_000 },
      { at: 1_060_000, time: 40_000 },
      { at: 1_080_000, time: 60_000 },
      { at: 1_100_000, time: 80_000 },
    ]);
  });

  it('hands a video frame over at its own time, and a late event at once', () => {
    const p = paced(5_000_000, 2_000_000); // capture time 5 s is wall time 2 s
    p.runTo(2000);
    p.input$.next(video(5_000_000)); // due now
    p.input$.next(video(5_100_000)); // due at 2.1 s
    expect(p.got).toEqual([{ at: 2_000_000, time: 5_000_000 }]);
    p.runTo(2300);
    p.input$.next(video(5_200_000)); // was due at 2.2 s: late, goes at once
    expect(p.got.slice(1)).toEqual([
      { at: 2_100_000, time: 5_100_000 },
      { at: 2_300_000, time: 5_200_000 },
    ]);
  });

  it("ends after the events before the source's end or error, and stops on unsubscribe", () => {
    const p = paced(0, 0);
    p.input$.next(audio(0));
    p.input$.next(audio(20_000));
    p.input$.error(new Error('ffmpeg output ended inside a sample'));
    expect(p.end).toEqual([]);
    p.runTo(100);
    expect(p.got.map((g) => g.at)).toEqual([20_000, 40_000]);
    expect(p.end).toEqual(['error at 40000: ffmpeg output ended inside a sample']);

    const q = paced(0, 0);
    q.input$.next(audio(0));
    q.input$.complete();
    q.runTo(100);
    expect(q.end).toEqual(['complete at 20000']);

    const r = paced(0, 0);
    r.input$.next(audio(0));
    r.subscription.unsubscribe();
    r.runTo(100);
    expect(r.got).toEqual([]);
    expect(r.scheduler.actions).toHaveLength(0);
  });
});
