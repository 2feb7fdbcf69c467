import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import { InvalidEventError, InvalidOptionError } from '../core/errors.js';
import type { AnySourceEvent } from '../core/events.js';
import type { Micros } from '../core/time.js';
import { WriteBacklogError } from './errors.js';
import type { McapRecorder } from './recorder.js';

export interface RecordToOptions {
  /** Receive time of each event (default: the recorder's clock at the moment the event passes). */
  readonly receiveTime?: (event: AnySourceEvent) => Micros;
}

/**
 * Passes events through unchanged and writes each to `recorder`. An event the recorder refuses (invalid, or its
 * write queue is full: `write_backlog`) still passes and is counted in `recorder.stats.rejected`; a failed disk
 * write errors the stream with the RecordingError, and so does a `receiveTime` callback that throws. Completing the
 * stream does not close the recorder: its owner awaits `recorder.close()`.
 */
export function recordTo<T extends AnySourceEvent>(
  recorder: McapRecorder,
  options: RecordToOptions = {},
): MonoTypeOperatorFunction<T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      const fail = (error: unknown) => {
        // Refusals (invalid event, bad receive time, full write queue) are counted by the recorder; the stream goes on.
        if (
          error instanceof InvalidEventError ||
          error instanceof InvalidOptionError ||
          error instanceof WriteBacklogError
        )
          return;
        subscriber.error(error);
      };
      return source.subscribe({
        next: (event) => {
          // A throw here (a receiveTime callback failing on a malformed event) would escape RxJS on a timer and end
          // the process; it ends this stream instead.
          try {
            recorder.write(event, options.receiveTime?.(event)).catch(fail);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          subscriber.next(event);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    });
}
