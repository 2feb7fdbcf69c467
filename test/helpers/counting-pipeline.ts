import { map, Observable } from 'rxjs';
import { createAlignment } from '../../src/align/align-windows.js';
import type { Prediction } from '../../src/core/window.js';
import type { PredictionPipeline } from '../../src/server/server.js';

/**
 * A small real pipeline for server tests: the real aligner, and a "model" whose score per label is the window's event
 * count squashed into (0, 1): n events score n / (n + 1). It lets protocol, backpressure, auth and event tests run
 * without a trained model. Like the live pipeline it tells `onStream` of each stream's end after its last prediction.
 */
export function countingPipeline(
  options: { windowMicros?: number; labels?: string[] } = {},
): PredictionPipeline {
  const labels = options.labels ?? ['events'];
  return {
    labels,
    run: (input$, sinks = {}) => {
      const alignment = createAlignment({
        size: options.windowMicros ?? 100_000,
        outOfOrderness: 0,
        aggregator: { aggregate: (_m, events) => events.length },
      });
      // The aligner tells of a close after the stream's last window, which map has passed on by then.
      const ends = new Observable<never>(() => {
        const s = alignment.closed$.subscribe((streamId) => sinks.onStream?.({ streamId, state: 'end' }));
        return () => s.unsubscribe();
      });
      const predictions = input$.pipe(
        alignment.align,
        map((w) => {
          const n = Object.values(w.contents).reduce<number>((a, b) => a + (b as number), 0);
          return {
            streamId: w.streamId,
            windowIndex: w.index,
            windowStart: w.start,
            windowEnd: w.end,
            scores: Object.fromEntries(labels.map((l) => [l, n / (n + 1)])),
            present: w.present,
          };
        }),
      );
      return new Observable<Prediction>((subscriber) => {
        const e = ends.subscribe();
        const p = predictions.subscribe(subscriber);
        return () => {
          p.unsubscribe();
          e.unsubscribe();
        };
      });
    },
  };
}
