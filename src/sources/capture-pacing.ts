import {
  asyncScheduler,
  type MonoTypeOperatorFunction,
  Observable,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import { type AnySourceEvent, capturedThrough } from '../core/events.js';
import type { Micros } from '../core/time.js';

/**
 * How long a file played as a device (`pace: 'realtime'`) waits before its first sample is "captured": ffmpeg's
 * start-up (probing the file) and its pipeline's delay (the fps filter holds a frame until it has seen the next one:
 * 100 ms at 10 fps) fit inside it, so frames are ready before a device would have handed them over.
 */
export const REALTIME_FILE_PREROLL: Micros = 400_000;

export interface CapturePacing {
  /** Capture time of the source's start (its first sample or frame's stamp), µs. */
  readonly origin: Micros;
  /** Wall time at which `origin` is captured, µs. */
  readonly start: Micros;
  readonly clock: () => Micros;
}

/**
 * Hands each event over when a device capturing it would have: at wall time `start + (capturedThrough(event) −
 * origin)`, i.e. an audio frame once its last sample is captured and a video frame at its time. For files played as
 * devices: ffmpeg's `-re` reads at the file's own rate, but hands audio over a demuxer packet at a time (256 ms of
 * an 8 kHz WAV) and video a filter frame late, so without this frames arrive in bursts, early or late by up to a
 * packet, and windows close on the bursts rather than on capture time. An event that comes after its time goes at
 * once. Order is kept; the source's end (or error) follows the events before it. What waits is bounded by how far
 * ffmpeg reads ahead of real time.
 */
export function releaseAtCaptureTime<E extends AnySourceEvent>(
  pacing: CapturePacing,
  scheduler: SchedulerLike = asyncScheduler,
): MonoTypeOperatorFunction<E> {
  return (source$) =>
    new Observable<E>((subscriber) => {
      const waiting: E[] = [];
      let end: { error: unknown } | 'complete' | undefined;
      let timer: Subscription | undefined;
      const dueIn = (event: E) => pacing.start + (capturedThrough(event) - pacing.origin) - pacing.clock();
      const release = (): void => {
        timer = undefined;
        while (waiting.length > 0) {
          const wait = dueIn(waiting[0] as E);
          if (wait > 0) {
            timer = scheduler.schedule(release, wait / 1000);
            return;
          }
          subscriber.next(waiting.shift() as E);
          if (subscriber.closed) return;
        }
        if (end === 'complete') subscriber.complete();
        else if (end !== undefined) subscriber.error(end.error);
      };
      const upstream = source$.subscribe({
        next: (event) => {
          waiting.push(event);
          if (timer === undefined) release();
        },
        error: (error: unknown) => {
          end = { error };
          if (timer === undefined) release();
        },
        complete: () => {
          end = 'complete';
          if (timer === undefined) release();
        },
      });
      return () => {
        upstream.unsubscribe();
        timer?.unsubscribe();
      };
    });
}
