import fc from 'fast-check';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { Prediction } from '../../src/core/window.js';
import { EventTracker, type LabelEvent } from '../../src/events/event-tracker.js';
import { createOrderedEvents, type PredictionOrEvent } from '../../src/events/ordered-events.js';
import type { EventSettings, LabelEventSettings } from '../../src/events/settings.js';
import { createPredictionOrder } from '../../src/pipeline/prediction-order.js';

/**
 * The event state machine over arbitrary score sequences: events alternate, follow the thresholds with hysteresis,
 * respect the minimum durations without missing a change that lasted, and do not depend on how streams interleave.
 */

const LABELS = ['a', 'b'];

/** Scores on a grid of hundredths so that they often land exactly on a threshold. */
const score = fc.integer({ min: 0, max: 100 }).map((n) => n / 100);

const settingsArb: fc.Arbitrary<EventSettings> = fc
  .record({
    on: fc.integer({ min: 0, max: 100 }),
    gap: fc.integer({ min: 0, max: 60 }),
    minOn: fc.constantFrom(0, 0, 50, 120, 333),
    minOff: fc.constantFrom(0, 0, 50, 120, 333),
  })
  .map(({ on, gap, minOn, minOff }) => ({
    on: on / 100,
    off: Math.max(0, on - gap) / 100,
    minOn,
    minOff,
  }));

interface StreamSpec {
  readonly streamId: string;
  readonly predictions: Prediction[];
}

/** One stream's predictions: a window grid of `size`/`hop` from `origin`, sometimes skipping windows (a gap). */
const streamArb = (streamId: string): fc.Arbitrary<StreamSpec> =>
  fc
    .record({
      size: fc.integer({ min: 10, max: 100 }),
      hopFraction: fc.constantFrom(1, 1, 0.5),
      origin: fc.integer({ min: 0, max: 500 }),
      windows: fc.array(fc.tuple(score, score, fc.integer({ min: 0, max: 9 })), {
        minLength: 1,
        maxLength: 60,
      }),
    })
    .map(({ size, hopFraction, origin, windows }) => {
      const hop = Math.max(1, Math.round(size * hopFraction));
      let index = 0;
      const predictions = windows.map(([a, b, skip]) => {
        if (skip === 0) index += 3;
        const windowStart = origin + index * hop;
        const p: Prediction = {
          streamId,
          windowIndex: index,
          windowStart,
          windowEnd: windowStart + size,
          scores: { a, b },
          present: { audio: true, video: false, text: false, label: false },
        };
        index += 1;
        return p;
      });
      return { streamId, predictions };
    });

const perLabel = (a: EventSettings, b: EventSettings): LabelEventSettings => ({
  default: a,
  labels: { a, b },
});

function runStream(settings: LabelEventSettings, ps: readonly Prediction[], close = true): LabelEvent[] {
  const tracker = new EventTracker(settings);
  const out = ps.flatMap((p) => tracker.observe(p));
  if (close && ps.length > 0) out.push(...tracker.close(ps[0]!.streamId));
  return out;
}

const boundaries = (ps: readonly Prediction[]): number[] =>
  ps.map((p, i) => (i === 0 ? p.windowStart : Math.max(ps[i - 1]!.windowEnd, p.windowStart)));

describe('events: the state machine', () => {
  it('alternates on, off, on... per label, in increasing time, and ends off once the stream closes', () => {
    fc.assert(
      fc.property(settingsArb, settingsArb, streamArb('s'), (sa, sb, { predictions }) => {
        const events = runStream(perLabel(sa, sb), predictions);
        for (const label of LABELS) {
          const mine = events.filter((e) => e.label === label);
          mine.forEach((e, i) => {
            expect(e.state).toBe(i % 2 === 0 ? 'on' : 'off');
            if (i > 0) expect(e.time).toBeGreaterThan(mine[i - 1]!.time);
          });
          if (mine.length > 0) expect(mine.at(-1)!.state).toBe('off');
          // Only a close's off is marked closed, and it is the last.
          for (const e of mine.slice(0, -1)) expect(e.closed).toBeUndefined();
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('without minimum durations: on where a score reaches on, off where one falls below off, nothing in between', () => {
    fc.assert(
      fc.property(settingsArb, streamArb('s'), (s0, { predictions }) => {
        const s = { ...s0, minOn: 0, minOff: 0 };
        const events = runStream(perLabel(s, s), predictions, false);
        const bs = boundaries(predictions);
        for (const label of LABELS) {
          // The reference: hysteresis in three lines.
          const expected: Partial<LabelEvent>[] = [];
          let on = false;
          predictions.forEach((p, i) => {
            const v = p.scores[label]!;
            const next = on ? !(v < s.off) : v >= s.on;
            if (next !== on)
              expected.push({
                state: next ? 'on' : 'off',
                time: bs[i],
                score: v,
                windowIndex: p.windowIndex,
              });
            on = next;
          });
          const mine = events
            .filter((e) => e.label === label)
            .map(({ state, time, score, windowIndex }) => ({ state, time, score, windowIndex }));
          expect(mine).toEqual(expected);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('hysteresis: scores between the thresholds never begin a change, whatever came before', () => {
    fc.assert(
      fc.property(
        settingsArb,
        streamArb('s'),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true })),
        (s, st, band) => {
          fc.pre(s.off < s.on);
          const tracker = new EventTracker(perLabel(s, s));
          for (const p of st.predictions) tracker.observe(p);
          const last = st.predictions.at(-1)!;
          // Then windows whose scores all sit in [off, on): none begins an event (one pending before may still be told).
          const events = band.flatMap((u, i) => {
            const v = s.off + u * (s.on - s.off) * 0.999;
            return tracker.observe({
              ...last,
              windowIndex: last.windowIndex + 1 + i,
              windowStart: last.windowEnd + i * 100,
              windowEnd: last.windowEnd + (i + 1) * 100,
              scores: { a: v, b: v },
            });
          });
          expect(events.filter((e) => e.windowIndex > last.windowIndex)).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('with minimum durations: every on lasts minOn, every off minOff, and a change that lasted is never missed', () => {
    fc.assert(
      fc.property(settingsArb, streamArb('s'), (s, { predictions }) => {
        const events = runStream(perLabel(s, s), predictions, false);
        const bs = boundaries(predictions);
        for (const label of LABELS) {
          const mine = events.filter((e) => e.label === label);
          for (let i = 1; i < mine.length; i++) {
            const span = mine[i]!.time - mine[i - 1]!.time;
            expect(span).toBeGreaterThanOrEqual(mine[i - 1]!.state === 'on' ? s.minOn : s.minOff);
          }
          // Each event's window crossed its threshold, and the scores held on its side until it had lasted.
          for (const e of mine) {
            const k = predictions.findIndex((p) => p.windowIndex === e.windowIndex);
            const v = predictions[k]!.scores[label]!;
            if (e.state === 'on') expect(v).toBeGreaterThanOrEqual(s.on);
            else expect(v).toBeLessThan(s.off);
            expect(e.time).toBe(bs[k]);
          }
          // Completeness: after windows k..j all past a threshold for at least its minimum, the label is in that state.
          const stateAfter = (j: number): 'on' | 'off' => {
            const last = predictions[j]!.windowIndex;
            const told = mine.filter((e) => {
              const k = predictions.findIndex((p) => p.windowIndex === e.windowIndex);
              // An event is known once it lasted: find the window that confirmed it.
              const min = e.state === 'on' ? s.minOn : s.minOff;
              const confirmed = predictions.findIndex((p, idx) => idx >= k && p.windowEnd - e.time >= min);
              return confirmed !== -1 && predictions[confirmed]!.windowIndex <= last;
            });
            return told.at(-1)?.state ?? 'off';
          };
          for (let j = 0; j < predictions.length; j++)
            for (let k = 0; k <= j; k++) {
              const run = predictions.slice(k, j + 1).map((p) => p.scores[label]!);
              const span = predictions[j]!.windowEnd - bs[k]!;
              if (run.every((v) => v >= s.on) && span >= s.minOn) expect(stateAfter(j)).toBe('on');
              if (run.every((v) => v < s.off) && span >= s.minOff) expect(stateAfter(j)).toBe('off');
            }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a stream that closes while on turns off at its last window end, marked closed', () => {
    const s: EventSettings = { on: 0.6, off: 0.4, minOn: 0, minOff: 0 };
    const p = (i: number, a: number): Prediction => ({
      streamId: 's',
      windowIndex: i,
      windowStart: i * 500,
      windowEnd: (i + 1) * 500,
      scores: { a },
      present: { audio: true, video: false, text: false, label: false },
    });
    const tracker = new EventTracker(perLabel(s, s));
    expect([0.1, 0.7, 0.5].flatMap((a, i) => tracker.observe(p(i, a)))).toEqual([
      { streamId: 's', label: 'a', state: 'on', time: 500, score: 0.7, windowIndex: 1 },
    ]);
    expect(tracker.close('s')).toEqual([
      { streamId: 's', label: 'a', state: 'off', time: 1500, score: 0.5, windowIndex: 2, closed: true },
    ]);
    expect(tracker.streams).toBe(0);
    // A pending off (the scores fell, not yet for minOff) ends where they fell.
    const slow = new EventTracker(perLabel({ ...s, minOff: 5000 }, s));
    for (const [i, a] of [0.9, 0.1, 0.1].entries()) slow.observe(p(i, a));
    expect(slow.close('s')).toEqual([
      { streamId: 's', label: 'a', state: 'off', time: 500, score: 0.1, windowIndex: 1, closed: true },
    ]);
  });

  it('any interleaving of the streams gives every stream the same events', () => {
    fc.assert(
      fc.property(
        settingsArb,
        fc.array(fc.nat(), { maxLength: 200 }),
        fc.tuple(streamArb('x'), streamArb('y'), streamArb('z')),
        (s, picks, streams) => {
          const settings = perLabel(s, s);
          const alone = streams.map((st) => runStream(settings, st.predictions, false));
          const queues = streams.map((st) => [...st.predictions]);
          const tracker = new EventTracker(settings);
          const mixed: LabelEvent[] = [];
          let n = 0;
          while (queues.some((q) => q.length > 0)) {
            const open = queues.filter((q) => q.length > 0);
            const q = open[(picks[n++] ?? 0) % open.length]!;
            mixed.push(...tracker.observe(q.shift()!));
          }
          for (const [i, st] of streams.entries())
            expect(mixed.filter((e) => e.streamId === st.streamId)).toEqual(alone[i]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('after a prediction order, the whole output (predictions, events, closing offs) is the same for any interleaving', async () => {
    const run = async (
      s: EventSettings,
      streams: StreamSpec[],
      picks: number[],
    ): Promise<PredictionOrEvent[]> => {
      const order = createPredictionOrder();
      const events = createOrderedEvents(perLabel(s, s));
      const input = new Subject<Prediction>();
      const out = lastValueFrom(input.pipe(order.operator, events.operator, toArray()));
      const queues = streams.map((st) => [...st.predictions]);
      for (const st of streams) order.mark({ streamId: st.streamId, state: 'open' });
      let n = 0;
      while (queues.some((q) => q.length > 0)) {
        const open = queues.filter((q) => q.length > 0);
        const q = open[(picks[n++] ?? 0) % open.length]!;
        const p = q.shift()!;
        events.seen(p);
        input.next(p);
        if (q.length === 0) {
          // The pipeline's end mark follows a stream's last prediction: the closing offs wait for the order.
          events.ended(p.streamId);
          order.mark({ streamId: p.streamId, state: 'end' });
        }
      }
      input.complete();
      return out;
    };
    await fc.assert(
      fc.asyncProperty(
        settingsArb,
        fc.array(fc.nat(), { maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 200 }),
        fc.tuple(streamArb('x'), streamArb('y'), streamArb('z')),
        async (s, p1, p2, streams) => {
          const a = await run(s, streams, p1);
          const b = await run(s, streams, p2);
          expect(b).toEqual(a);
          // Every stream ends off, and its close comes after its last prediction.
          for (const st of streams) {
            const last = a.findLastIndex(
              (x) => x.type === 'prediction' && x.prediction.streamId === st.streamId,
            );
            const closes = a.filter(
              (x) => x.type === 'event' && x.event.streamId === st.streamId && x.event.closed,
            );
            for (const c of closes) expect(a.indexOf(c)).toBeGreaterThan(last);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('an empty input makes no events', async () => {
    const events = createOrderedEvents(
      perLabel({ on: 0.6, off: 0.4, minOn: 0, minOff: 0 }, { on: 0.6, off: 0.4, minOn: 0, minOff: 0 }),
    );
    expect(await lastValueFrom(from([] as Prediction[]).pipe(events.operator, toArray()))).toEqual([]);
  });
});
