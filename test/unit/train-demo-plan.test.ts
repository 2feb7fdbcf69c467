import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contains, extendEnds, type Interval, intersect, union } from '../../scripts/demo-data/intervals.js';
import { FRAME_HEIGHT, FRAME_WIDTH } from '../../scripts/demo-data/media.js';
import {
  CONVERSATION_SPAN,
  DEMO_LABELS,
  DISTRACTOR_LABEL,
  DISTRACTOR_MARGIN,
  labelChanges,
  labelIntervals,
  planSession,
  SENSOR_NOISE_LABEL,
  type SessionPlan,
  sampleTime,
  TYPING_HOLD,
  voiceLabel,
} from '../../scripts/demo-data/plan.js';
import { renderSession } from '../../scripts/demo-data/render.js';
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

describe('planSession with distractors, voices and augmentation', () => {
  const clips = [
    { samples: 10 * 16_000, level: 0.1, kind: 'music' },
    { samples: 2 * 16_000, level: 0.01, kind: 'tones' },
    { samples: 6_400, level: 0.3, kind: 'field' },
  ];
  const promptLevels = [0.05, 0.1, 0.2, 0.08];
  const inputs = {
    seconds: 60,
    promptSamples: [8_000, 24_000, 40_000, 16_000],
    transcripts: 5,
    videoFrames: [100, 40],
    promptVoices: [0, 0, 0, 1],
    gapSeconds: [0.5, 7] as const,
    distractors: { clips, promptLevels },
    augment: true,
  };
  const plans = Array.from({ length: 30 }, (_, i) => planSession(mulberry32(100 + i), inputs));

  it('places distractors only in the gaps, at least DISTRACTOR_MARGIN from speech, inside their clips', () => {
    let placed = 0;
    for (const p of plans) {
      const speech = p.speech.map((s) => [s.startSample, s.startSample + s.samples] as const);
      for (const d of p.distractors ?? []) {
        placed++;
        const clip = clips[d.clip] as (typeof clips)[number];
        expect(d.samples).toBeGreaterThanOrEqual(0.4 * 16_000 - 16);
        expect(d.offset + d.samples).toBeLessThanOrEqual(clip.samples);
        expect(d.startSample + d.samples).toBeLessThanOrEqual(60 * 16_000);
        expect(d.startSample % 16).toBe(0);
        for (const [a, b] of speech) {
          const apart =
            d.startSample >= b + DISTRACTOR_MARGIN * 16_000 ||
            d.startSample + d.samples <= a - DISTRACTOR_MARGIN * 16_000;
          expect(apart).toBe(true);
        }
      }
      // The distractor label is on exactly while one plays, and never together with speech.
      const on = labelIntervals(p);
      expect(on[DISTRACTOR_LABEL]).toEqual(
        union(
          (p.distractors ?? []).map((d) => [
            sampleTime(d.startSample),
            sampleTime(d.startSample + d.samples),
          ]),
        ),
      );
      expect(intersect(on[DISTRACTOR_LABEL] ?? [], on.speech ?? [])).toEqual([]);
      // Per kind and for the quiet ones too, every label in every event.
      const names = [
        ...DEMO_LABELS,
        DISTRACTOR_LABEL,
        'distractor_field',
        'distractor_music',
        'distractor_tones',
        'distractor_quiet',
        SENSOR_NOISE_LABEL,
      ];
      expect(Object.keys(labelChanges(on, 60 * S)[0]?.labels ?? {})).toEqual(names);
      const ofKind = (kind: string) =>
        union(
          (p.distractors ?? [])
            .filter((d) => d.kind === kind)
            .map((d) => [sampleTime(d.startSample), sampleTime(d.startSample + d.samples)]),
        );
      for (const kind of ['field', 'music', 'tones']) expect(on[`distractor_${kind}`]).toEqual(ofKind(kind));
      expect(union(['field', 'music', 'tones'].flatMap((k) => on[`distractor_${k}`] ?? []))).toEqual(
        on[DISTRACTOR_LABEL],
      );
      expect(on['distractor_quiet']).toEqual(
        union(
          (p.distractors ?? [])
            .filter((d) => d.quiet)
            .map((d) => [sampleTime(d.startSample), sampleTime(d.startSample + d.samples)]),
        ),
      );
    }
    expect(placed).toBeGreaterThan(60);
  });

  it("matches each distractor's level to a prompt's, ±3 dB around the prompts' −6…0 dB, a quarter 12 dB lower", () => {
    const all = plans.flatMap((p) => p.distractors ?? []);
    for (const d of all) {
      const level = (clips[d.clip] as (typeof clips)[number]).level * d.gain;
      const db = (l: number): number => 20 * Math.log10(l);
      const lo = db(Math.min(...promptLevels)) - 9 - (d.quiet ? 12 : 0);
      const hi = db(Math.max(...promptLevels)) + 3 - (d.quiet ? 12 : 0);
      expect(db(level)).toBeGreaterThanOrEqual(lo - 1e-9);
      expect(db(level)).toBeLessThanOrEqual(hi + 1e-9);
    }
    const quiet = all.filter((d) => d.quiet).length / all.length;
    expect(quiet).toBeGreaterThan(0.1);
    expect(quiet).toBeLessThan(0.4);
    // Every kind is drawn.
    expect(new Set(all.map((d) => (clips[d.clip] as (typeof clips)[number]).kind))).toEqual(
      new Set(['music', 'tones', 'field']),
    );
  });

  it('records who speaks: voice_<name> labels cover exactly the speech of that voice', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const p = planSession(mulberry32(seed), { ...inputs, voiceNames: ['en', 'espeak/ru+f5'] });
      const on = labelIntervals(p);
      const en = on[voiceLabel('en')] ?? [];
      const ru = on['voice_espeak-ru-f5'] ?? [];
      expect(union([...en, ...ru])).toEqual(on.speech);
      expect(intersect(en, ru)).toEqual([]);
      for (const s of p.speech) expect(s.voice).toBe(s.prompt === 3 ? 'espeak/ru+f5' : 'en');
    }
  });

  it('draws a voice first: the one prompt of voice 1 is about half of the speech', () => {
    const speech = plans.flatMap((p) => p.speech);
    const share = speech.filter((s) => s.prompt === 3).length / speech.length;
    expect(share).toBeGreaterThan(0.35);
    expect(share).toBeLessThan(0.65);
  });

  it('augments video segments with blur and sensor noise, and a noisy still is still motion = 0', () => {
    const segments = plans.flatMap((p) => p.video);
    expect(segments.some((v) => (v.blur ?? 0) > 0)).toBe(true);
    expect(segments.some((v) => v.kind === 'still' && (v.noise ?? 0) > 0)).toBe(true);
    for (const p of plans) {
      const motion = labelIntervals(p).motion ?? [];
      for (const v of p.video.filter((s) => s.kind === 'still'))
        expect(intersect(motion, [[v.firstFrame * 100_000, (v.firstFrame + v.frames) * 100_000]])).toEqual(
          [],
        );
      // sensor_noise is on exactly over the noisy segments with a picture.
      const noisy = union(
        p.video
          .filter((v) => v.kind !== 'none' && (v.noise ?? 0) > 0)
          .map((v) => [v.firstFrame * 100_000, (v.firstFrame + v.frames) * 100_000]),
      );
      expect(labelIntervals(p)[SENSOR_NOISE_LABEL]).toEqual(noisy);
    }
  });

  it('leaves a session planned without them as it was: no distractors, no augmentation, no distractor label', () => {
    const plain = planSession(mulberry32(5), {
      seconds: 60,
      promptSamples: [8_000, 24_000, 40_000],
      transcripts: 5,
      videoFrames: [100, 40],
    });
    expect(plain.distractors).toBeUndefined();
    expect(plain.video.every((v) => v.blur === undefined && v.noise === undefined)).toBe(true);
    expect(Object.keys(labelIntervals(plain))).toEqual([...DEMO_LABELS]);
  });
});

describe('renderSession with distractors and sensor noise', () => {
  const frame = Uint8Array.from({ length: FRAME_WIDTH * FRAME_HEIGHT }, (_, i) => (i * 7) % 200);
  const clip = Int16Array.from({ length: 16_000 }, (_, i) => Math.round(8000 * Math.sin(i / 3)));
  const p: SessionPlan = {
    seconds: 4,
    speech: [],
    noise: [{ kind: 'quiet', level: 0, startSample: 0, endSample: 64_000 }],
    video: [
      {
        kind: 'still',
        firstFrame: 0,
        frames: 40,
        source: 0,
        sourceFrame: 0,
        gain: 1,
        offset: 0,
        mirror: false,
        blur: 0,
        noise: 4,
        noiseSeed: 9,
      },
    ],
    texts: [],
    distractors: [
      { clip: 0, offset: 100, startSample: 16_000, samples: 8_000, gain: 0.5, quiet: false, kind: 'tones' },
    ],
    distractorKinds: ['tones'],
  };
  const media = {
    prompts: [],
    transcripts: [],
    videos: [{ name: 'still', frames: [frame] }],
    distractors: [{ kind: 'tones', source: 'test', name: 'sine', samples: clip, level: 0.17 }],
  };
  const events = renderSession(p, media, { streamId: 's', t0: 1_700_000_000_000_000, random: mulberry32(1) });

  it('mixes the clip excerpt in at its gain, and nothing elsewhere', () => {
    const audio = events
      .filter((e) => e.modality === 'audio')
      .flatMap((e) => [...(e.payload as { samples: Int16Array }).samples]);
    for (let i = 0; i < 64_000; i++) {
      const inside = i >= 16_000 && i < 24_000;
      const want = inside ? Math.round(((clip[100 + i - 16_000] as number) / 32768) * 0.5 * 32768) : 0;
      expect(Math.abs((audio[i] as number) - want)).toBeLessThanOrEqual(1);
    }
  });

  it('adds fresh sensor noise to every frame of a still segment, labelled motion = 0 throughout', () => {
    const frames = events
      .filter((e) => e.modality === 'video')
      .map((e) => (e.payload as { data: Uint8Array }).data);
    expect(frames).toHaveLength(40);
    const diff = (a: Uint8Array, b: Uint8Array) =>
      a.reduce((n, v, i) => n + Math.abs(v - (b[i] as number)), 0) / a.length;
    expect(diff(frames[0] as Uint8Array, frames[1] as Uint8Array)).toBeGreaterThan(2);
    expect(diff(frames[0] as Uint8Array, frame)).toBeLessThan(6);
    const labels = events
      .filter((e) => e.modality === 'label')
      .map((e) => (e.payload as { labels: Record<string, number> }).labels);
    expect(labels.every((l) => l['motion'] === 0)).toBe(true);
    // The camera's noise is recorded as its own label, on throughout the noisy still.
    expect(labels.every((l) => l[SENSOR_NOISE_LABEL] === 1)).toBe(true);
    expect(labels.map((l) => l[DISTRACTOR_LABEL])).toEqual([0, 1, 0]);
    expect(labels.map((l) => l['distractor_tones'])).toEqual([0, 1, 0]);
    expect(labels.map((l) => l['distractor_quiet'])).toEqual([0, 0, 0]);
  });
});
