import { Observable, type OperatorFunction } from 'rxjs';
import type { Prediction } from '../core/window.js';

/**
 * Puts predictions of many streams into one deterministic order — by window end, then stream id — whatever batches
 * and timing produced them, so that two replays of a recording write byte-identical output. A prediction is held
 * until every stream has produced one at least as late; the end of the input releases the rest.
 */
export function orderPredictions(
  knownStreams: readonly string[] = [],
): OperatorFunction<Prediction, Prediction> {
  return (source) =>
    new Observable<Prediction>((subscriber) => {
      // Streams known to come hold everything back until their first prediction.
      const latest = new Map<string, number>(knownStreams.map((s) => [s, Number.NEGATIVE_INFINITY]));
      let held: Prediction[] = [];
      const release = (upTo: number) => {
        if (held.length === 0) return;
        held.sort(
          (a, b) =>
            a.windowEnd - b.windowEnd || (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0),
        );
        let n = 0;
        while (n < held.length && held[n]!.windowEnd <= upTo) subscriber.next(held[n++]!);
        held = held.slice(n);
      };
      const frontier = () => Math.min(...latest.values());
      return source.subscribe({
        next: (item) => {
          latest.set(item.streamId, item.windowEnd);
          held.push(item);
          release(frontier());
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          release(Number.POSITIVE_INFINITY);
          subscriber.complete();
        },
      });
    });
}

/** One prediction as an NDJSON line with a fixed key order and the scores rounded to 6 decimals. */
export function predictionLine(p: Prediction): string {
  const scores: Record<string, number> = {};
  for (const [label, v] of Object.entries(p.scores)) scores[label] = Math.round(v * 1e6) / 1e6;
  return `${JSON.stringify({
    streamId: p.streamId,
    windowIndex: p.windowIndex,
    windowStart: p.windowStart,
    windowEnd: p.windowEnd,
    scores,
    present: { audio: p.present.audio, video: p.present.video, text: p.present.text },
  })}\n`;
}
