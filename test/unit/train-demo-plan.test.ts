import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contains, extendEnds, type Interval, intersect, union } from '../../scripts/demo-data/intervals.js';
import {
  CONVERSATION_SPAN,
  DEMO_LABELS,
  labelChanges,
  labelIntervals,
  planSession,
  type SessionPlan,
  TYPING_HOLD,
} from '../../scripts/demo-data/plan.js';
import { mulberry32 } from '../../src/model/weights.js';

const S = 1_000_000;
const intervalsArb = fc.array(
  fc
    .tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 10 }))
    .map(([a, d]) => [a, a + d] as Interval),
  { maxLength: 8 },
);
const inAny = (set: readonly Interval[], t: number) => set.some(([a, b]) => a <= t && t < b);

describe('interval sets', () => {
  it('union, intersect and extendEnds agree with point membership', () => {
    fc.assert(
      fc.property(intervalsArb, intervalsArb, fc.integer({ min: 0, max: 5 }), (x, y, by) => {
        const u = union(x);
        const i = intersect(x, y);
        const e = extendEnds(x, by);
        for (let t = -1; t <= 70; t++) {
          expect(contains(u, t)).toBe(inAny(x, t));
          expect(contains(i, t)).toBe(inAny(x, t) && inAny(y, t));
          expect(contains(e, t)).toBe(x.some(([a, b]) => b > a && a <= t && t < b + by));
        }
        for (let k = 1; k < u.length; k++)
          expect((u[k] as Interval)[0]).toBeGreaterThan((u[k - 1] as Interval)[1]);
      }),
    );
  });
});

/** A hand-made plan: speech 1–2 s, texts at 4 s and 10 s, motion 0–3 s. */
const plan: SessionPlan = {
  seconds: 20,
  speech: [{ prompt: 0, startSample: 16_000, samples: 16_000, gain: 1 }],
  noise: [{ kind: 'quiet', level: 0.001, startSample: 0, endSample: 320_000 }],
  video: [
    {
      kind: 'motion',
      firstFrame: 0,
      frames: 30,
      source: 0,
      sourceFrame: 0,
      gain: 1,
      offset: 0,
      mirror: false,
    },
    {
      kind: 'still',
      firstFrame: 30,
      frames: 170,
      source: 0,
      sourceFrame: 5,
      gain: 1,
      offset: 0,
      mirror: false,
    },
  ],
  texts: [
    { time: 4 * S, transcript: 0 },
    { time: 10 * S, transcript: 1 },
  ],
};

describe('demo labels', () => {
  const on = labelIntervals(plan);

  it('speech and motion are on exactly while the clip plays', () => {
    expect(on.speech).toEqual([[S, 2 * S]]);
    expect(on.motion).toEqual([[0, 3 * S]]);
  });

  it('typing is on for TYPING_HOLD from each text event', () => {
    expect(on.typing).toEqual([
      [4 * S, 4 * S + TYPING_HOLD],
      [10 * S, 10 * S + TYPING_HOLD],
    ]);
  });

  it('conversation needs speech and a text event both within the last CONVERSATION_SPAN', () => {
    // Speech ended at 2 s, so it counts until 5 s; the text at 4 s counts from 4 s: on for [4 s, 5 s). The text at
    // 10 s has no speech within 3 s before it.
    expect(CONVERSATION_SPAN).toBe(3 * S);
    expect(on.conversation).toEqual([[4 * S, 5 * S]]);
  });

  it('emits one label event at the start and one per change, all labels each time, none at the end', () => {
    const changes = labelChanges(on, plan.seconds * S);
    expect(changes[0]).toEqual({ time: 0, labels: { speech: 0, motion: 1, typing: 0, conversation: 0 } });
    expect(changes.map((c) => c.time)).toEqual([0, S, 2 * S, 3 * S, 4 * S, 5 * S, 6 * S, 10 * S, 12 * S]);
    for (const change of changes) expect(Object.keys(change.labels)).toEqual([...DEMO_LABELS]);
  });
});

describe('planSession', () => {
  const inputs = {
    seconds: 60,
    promptSamples: [8_000, 24_000, 40_000],
    transcripts: 5,
    videoFrames: [100, 40],
  };

  it('is fixed by the seed', () => {
    expect(planSession(mulberry32(3), inputs)).toEqual(planSession(mulberry32(3), inputs));
    expect(planSession(mulberry32(3), inputs)).not.toEqual(planSession(mulberry32(4), inputs));
  });

  it('keeps speech apart and inside the session, and tiles the session with video and noise segments', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const p = planSession(mulberry32(seed), inputs);
      let end = 0;
      for (const s of p.speech) {
        expect(s.startSample).toBeGreaterThanOrEqual(end);
        expect(s.startSample % 16).toBe(0);
        end = s.startSample + s.samples;
      }
      expect(end).toBeLessThanOrEqual(60 * 16_000);
      expect(p.video.reduce((n, v) => n + v.frames, 0)).toBe(600);
      expect(p.noise.at(-1)?.endSample).toBe(60 * 16_000);
      for (const t of p.texts) expect(t.time).toBeLessThan(60 * S);
    }
  });
});
