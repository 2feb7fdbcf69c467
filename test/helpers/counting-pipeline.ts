import { map, Observable } from 'rxjs';
import { createAlignment } from '../../src/align/align-windows.js';
import type { PredictionPipeline } from '../../src/server/server.js';

/**
 * A small real pipeline for server tests: the real aligner, and a "model" whose score per label is the window's event
 * count squashed into (0, 1). It lets protocol, backpressure and auth tests run without a trained model.
 */
export function countingPipeline(
  options: { windowMicros?: number; labels?: string[] } = {},
): PredictionPipeline {
  const labels = options.labels ?? ['events'];
  return {
    labels,
    run: (input$, sinks) => {
      const alignment = createAlignment({
        size: options.windowMicros ?? 100_000,
        outOfOrderness: 0,
        aggregator: { aggregate: (_m, events) => events.length },
      });
      // The aligner closes a stream after its last window, and `map` is synchronous: the end follows its last prediction.
      const ended = alignment.closed$.pipe(map((streamId) => ({ streamId, state: 'end' as const })));
      const predictions$ = input$.pipe(
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
      return new Observable((subscriber) => {
        const ends = ended.subscribe((mark) => sinks?.onStream?.(mark));
        const predictions = predictions$.subscribe(subscriber);
        return () => {
          predictions.unsubscribe();
          ends.unsubscribe();
        };
      });
    },
  };
}
