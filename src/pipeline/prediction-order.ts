import { Observable, type OperatorFunction } from 'rxjs';
import type { Prediction } from '../core/window.js';
import type { StreamMark } from './stream-lifecycle.js';

export interface PredictionOrder {
  readonly operator: OperatorFunction<Prediction, Prediction>;
  /** A stream opened or ended (PredictionPipelineRunner.run's `onStream`). */
  mark(mark: StreamMark): void;
  /** Predictions held back right now, and streams followed: bounded by the streams open, never by time. */
  held(): { predictions: number; streams: number };
}

const before = (a: Prediction, b: Prediction): boolean =>
  a.windowEnd < b.windowEnd || (a.windowEnd === b.windowEnd && a.streamId < b.streamId);

/**
 * Puts predictions of many streams into one deterministic order — by window end, then stream id — whatever batches
 * and timing produced them, so that two replays of a recording write byte-identical output. A prediction is held
 * until every stream still open has produced one at least as late. Streams are followed from their `open` mark to
 * their `end` mark, which the pipeline gives after their last prediction, so a stream that has ended (or never
 * opened: one with no events in a replay's range) holds nothing back. A stream that has not opened yet cannot come
 * in earlier: the pipeline marks it open in input order, and a replay's input is in time order. Streams seen without
 * marks are followed until the input ends. The end of the input releases the rest.
 */
export function createPredictionOrder(): PredictionOrder {
  const streams = new Map<string, { opens: number; latest: number }>();
  let held: Prediction[] = [];
  let release: (() => void) | undefined;

  const frontier = (): number => {
    let min = Number.POSITIVE_INFINITY;
    for (const s of streams.values()) if (s.latest < min) min = s.latest;
    return min;
  };

  const operator: OperatorFunction<Prediction, Prediction> = (source) =>
    new Observable<Prediction>((subscriber) => {
      const releaseUpTo = (upTo: number): void => {
        let n = 0;
        while (n < held.length && (held[n] as Prediction).windowEnd <= upTo) n += 1;
        if (n === 0) return;
        const out = held.slice(0, n);
        held = held.slice(n);
        for (const p of out) subscriber.next(p);
      };
      release = () => releaseUpTo(frontier());
      const subscription = source.subscribe({
        next: (item) => {
          const s = streams.get(item.streamId);
          if (s) s.latest = item.windowEnd;
          else streams.set(item.streamId, { opens: 0, latest: item.windowEnd });
          // Binary search for the insertion point: per stream the input is in order, across streams it is not.
          let lo = 0;
          let hi = held.length;
          while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (before(held[mid] as Prediction, item)) lo = mid + 1;
            else hi = mid;
          }
          held.splice(lo, 0, item);
          releaseUpTo(frontier());
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          releaseUpTo(Number.POSITIVE_INFINITY);
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        release = undefined;
        held = [];
        streams.clear();
      };
    });

  return {
    operator,
    mark: ({ streamId, state }) => {
      const s = streams.get(streamId);
      if (state === 'open') {
        if (s) s.opens += 1;
        else streams.set(streamId, { opens: 1, latest: Number.NEGATIVE_INFINITY });
        return;
      }
      if (!s) return;
      s.opens -= 1;
      if (s.opens > 0) return;
      streams.delete(streamId);
      release?.();
    },
    held: () => ({ predictions: held.length, streams: streams.size }),
  };
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
