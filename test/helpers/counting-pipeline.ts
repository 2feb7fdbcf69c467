import { map } from 'rxjs';
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
    run: (input$) => {
      const alignment = createAlignment({
        size: options.windowMicros ?? 100_000,
        outOfOrderness: 0,
        aggregator: { aggregate: (_m, events) => events.length },
      });
      return input$.pipe(
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
    },
  };
}
