import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import { InvalidEventError, InvalidOptionError } from '../core/errors.js';
import type { AnySourceEvent } from '../core/events.js';
import type { Micros } from '../core/time.js';
import type { McapRecorder } from './recorder.js';

export interface RecordToOptions {
  /** Receive time of each event (default: the recorder's clock at the moment the event passes). */
  readonly receiveTime?: (event: AnySourceEvent) => Micros;
}

/**
 * Passes events through unchanged and writes each to `recorder`. An event the recorder refuses (invalid) still
 * passes and is counted in `recorder.stats.rejected`; a failed disk write errors the stream with the
 * RecordingError. Completing the stream does not close the recorder: its owner awaits `recorder.close()`.
 */
export function recordTo<T extends AnySourceEvent>(
  recorder: McapRecorder,
  options: RecordToOptions = {},
): MonoTypeOperatorFunction<T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      const fail = (error: unknown) => {
        if (error instanceof InvalidEventError || error instanceof InvalidOptionError) return;
        subscriber.error(error);
      };
      return source.subscribe({
        next: (event) => {
          recorder.write(event, options.receiveTime?.(event)).catch(fail);
          subscriber.next(event);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    });
}
