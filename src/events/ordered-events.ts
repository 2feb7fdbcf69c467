import { Observable, type OperatorFunction } from 'rxjs';
import type { Micros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import { EventTracker, type LabelEvent } from './event-tracker.js';
import type { LabelEventSettings } from './settings.js';

export type PredictionOrEvent =
  | { readonly type: 'prediction'; readonly prediction: Prediction }
  | { readonly type: 'event'; readonly event: LabelEvent }
  /** A stream's closing events are out: nothing more of it until it opens again. */
  | { readonly type: 'end'; readonly streamId: string };

export interface OrderedEvents {
  /** Over predictions already in one order (createPredictionOrder): each prediction, then the events it made. */
  readonly operator: OperatorFunction<Prediction, PredictionOrEvent>;
  /** Before the order: a prediction came out of the pipeline (it may be its stream's last). */
  seen(p: Prediction): void;
  /** Before the order: the stream ended after its last prediction (the pipeline's `end` mark). */
  ended(streamId: string): void;
}

/**
 * Events of predictions that a prediction order (src/pipeline/prediction-order.ts) has put in one order, so they are
 * the same at any replay speed. A stream's end is known before the order releases its last prediction, so the
 * closing offs wait: they go out, by (last window end, stream id), once the ordered predictions move past that end
 * (no stream can still send one as early: the order held them for the ended stream), or when the input ends, when
 * every stream still followed is closed too.
 */
export function createOrderedEvents(settings: LabelEventSettings): OrderedEvents {
  const latest = new Map<string, Prediction>();
  /** Ended streams whose closing offs wait; `last` is their last prediction, `out` once the order released it. */
  let closes: { streamId: string; after: Micros; last: Prediction; out: boolean }[] = [];

  const operator: OperatorFunction<Prediction, PredictionOrEvent> = (source) =>
    new Observable<PredictionOrEvent>((subscriber) => {
      const tracker = new EventTracker(settings);
      const emitEvents = (events: readonly LabelEvent[]): void => {
        for (const event of events) subscriber.next({ type: 'event', event });
      };
      // Closes due before `upTo` (strictly): their last predictions are out, and no stream has one that early left.
      const flushCloses = (due: (c: (typeof closes)[number]) => boolean): void => {
        const now = closes.filter(due);
        if (now.length === 0) return;
        closes = closes.filter((c) => !due(c));
        now.sort((a, b) => a.after - b.after || (a.streamId < b.streamId ? -1 : 1));
        for (const c of now) closeStream(c.streamId);
      };
      const closeStream = (streamId: string): void => {
        emitEvents(tracker.close(streamId));
        subscriber.next({ type: 'end', streamId });
      };
      const subscription = source.subscribe({
        next: (p) => {
          flushCloses((c) => c.after < p.windowEnd);
          // A stream that opened again (earlier than it ended: not in a time-ordered replay) closes its old life first.
          flushCloses((c) => c.out && c.streamId === p.streamId);
          subscriber.next({ type: 'prediction', prediction: p });
          emitEvents(tracker.observe(p));
          for (const c of closes) if (c.last === p) c.out = true;
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          flushCloses(() => true);
          for (const id of tracker.streamIds().sort()) closeStream(id);
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        closes = [];
        latest.clear();
      };
    });

  return {
    operator,
    seen: (p) => {
      latest.set(p.streamId, p);
    },
    ended: (streamId) => {
      const last = latest.get(streamId);
      latest.delete(streamId);
      if (last === undefined) return;
      closes.push({ streamId, after: last.windowEnd, last, out: false });
    },
  };
}
