import { asyncScheduler, Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { isStreamControl, type StreamInput } from '../core/events.js';
import type { Micros } from '../core/time.js';

export interface TimedSource {
  readonly input$: Observable<StreamInput>;
  /** Sparse sources (text) ride along: capture ends once every dense one has passed the end or finished. */
  readonly dense: boolean;
}

/**
 * The first `duration` µs of a capture session, in capture time from its first event: each source is cut at its
 * first event at or past the end (that event is not kept), and the session completes once every dense source has
 * been cut or has finished. Capture time, not wall time, so a loaded machine that starts ffmpeg late still records
 * the same span of media. A wall-clock guard (`duration` plus `graceMs`) ends a session whose devices went silent.
 */
export function captureFor(
  sources: readonly TimedSource[],
  duration: Micros,
  graceMs = 5000,
  scheduler: SchedulerLike = asyncScheduler,
): Observable<StreamInput> {
  return new Observable<StreamInput>((subscriber) => {
    let end: number | undefined;
    let denseLeft = sources.filter((s) => s.dense).length;
    let left = sources.length;
    const finish = () => subscriber.complete();
    const stopped = (dense: boolean) => {
      left--;
      if (dense) denseLeft--;
      if (left === 0 || (denseLeft === 0 && sources.some((s) => s.dense))) finish();
    };
    const subscriptions = sources.map((source) => {
      let done = false;
      let subscription: Subscription | undefined;
      subscription = source.input$.subscribe({
        next: (input) => {
          if (done) return;
          if (isStreamControl(input)) return subscriber.next(input);
          end ??= input.time + duration;
          if (input.time >= end) {
            done = true;
            subscription?.unsubscribe();
            return stopped(source.dense);
          }
          subscriber.next(input);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          if (done) return;
          done = true;
          stopped(source.dense);
        },
      });
      if (done) subscription.unsubscribe();
      return subscription;
    });
    const guard = scheduler.schedule(finish, duration / 1000 + graceMs);
    return () => {
      guard.unsubscribe();
      for (const s of subscriptions) s.unsubscribe();
    };
  });
}
