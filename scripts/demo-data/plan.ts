import { contains, extendEnds, type Interval, intersect, union } from './intervals.js';

/** The demo task's labels, in the model's output order. */
export const DEMO_LABELS = ['speech', 'motion', 'typing', 'conversation'] as const;
export type DemoLabel = (typeof DEMO_LABELS)[number];

export const SAMPLE_RATE = 16_000;
export const FPS = 10;
const FRAME_MICROS = 1_000_000 / FPS;
/** `typing` stays on this long after a text event. */
export const TYPING_HOLD = 2_000_000;
/** `conversation` needs speech and a text event both within this span before now. */
export const CONVERSATION_SPAN = 3_000_000;
/** Speech is placed on whole milliseconds (16 samples at 16 kHz), so its times are exact µs. */
const SAMPLE_GRID = SAMPLE_RATE / 1000;

export type NoiseKind = 'quiet' | 'white' | 'brown';
export type VideoKind = 'motion' | 'still' | 'none';

export interface PlannedSpeech {
  /** Index into the split's speech prompts. */
  readonly prompt: number;
  readonly startSample: number;
  readonly samples: number;
  /** Linear gain applied to the prompt. */
  readonly gain: number;
}

export interface PlannedNoise {
  readonly kind: NoiseKind;
  /** RMS level, linear full scale. */
  readonly level: number;
  readonly startSample: number;
  readonly endSample: number;
}

export interface PlannedVideo {
  readonly kind: VideoKind;
  /** First frame on the session's 10 fps grid, and how many frames. */
  readonly firstFrame: number;
  readonly frames: number;
  /** Index into the split's video sources, and the source frame shown first (motion) or throughout (still). */
  readonly source: number;
  readonly sourceFrame: number;
  /** Camera variation per segment, so a picture's look says nothing about motion: v' = gain·v + offset, mirrored. */
  readonly gain: number;
  readonly offset: number;
  readonly mirror: boolean;
}

export interface PlannedText {
  /** µs since the session start. */
  readonly time: number;
  /** Index into the split's transcripts. */
  readonly transcript: number;
}

/** Everything about one session that randomness decides; times are relative to the session start. */
export interface SessionPlan {
  readonly seconds: number;
  readonly speech: readonly PlannedSpeech[];
  readonly noise: readonly PlannedNoise[];
  readonly video: readonly PlannedVideo[];
  readonly texts: readonly PlannedText[];
}

/** What a session may draw from: lengths of the split's prompts, frame counts of its video sources. */
export interface PlanInputs {
  readonly seconds: number;
  readonly promptSamples: readonly number[];
  readonly transcripts: number;
  readonly videoFrames: readonly number[];
  /** Mean gap between text events, in seconds. */
  readonly textEvery?: number;
}

const between = (random: () => number, lo: number, hi: number): number => lo + (hi - lo) * random();
const pick = (random: () => number, n: number): number => Math.min(n - 1, Math.floor(random() * n));
const dbToLinear = (db: number): number => 10 ** (db / 20);

/** µs of a sample index: exact on the 1 ms grid speech is placed on. */
export const sampleTime = (sample: number): number => Math.floor((sample * 1_000_000) / SAMPLE_RATE);

/**
 * Draws one session's timeline: speech prompts separated by 0.5–5 s gaps over a changing noise bed (quiet, white
 * or brown noise well below speech level), video segments of 2–10 s that play a clip (motion), freeze one of its
 * frames (still) or send nothing (no camera), and text events at exponential intervals.
 */
export function planSession(random: () => number, inputs: PlanInputs): SessionPlan {
  const total = inputs.seconds * SAMPLE_RATE;
  const speech: PlannedSpeech[] = [];
  let cursor = Math.round((between(random, 0.3, 3) * SAMPLE_RATE) / SAMPLE_GRID) * SAMPLE_GRID;
  while (cursor < total) {
    const room = total - cursor;
    const fitting = inputs.promptSamples.flatMap((n, i) => (n <= room ? [i] : []));
    if (fitting.length === 0) break;
    const prompt = fitting[pick(random, fitting.length)] as number;
    const samples = inputs.promptSamples[prompt] as number;
    speech.push({ prompt, startSample: cursor, samples, gain: dbToLinear(between(random, -6, 0)) });
    const gap = Math.round((between(random, 0.5, 5) * SAMPLE_RATE) / SAMPLE_GRID) * SAMPLE_GRID;
    cursor += Math.ceil(samples / SAMPLE_GRID) * SAMPLE_GRID + gap;
  }
  const noise: PlannedNoise[] = [];
  for (let start = 0; start < total; ) {
    const end = Math.min(total, start + Math.round(between(random, 2, 8) * SAMPLE_RATE));
    const r = random();
    const kind: NoiseKind = r < 0.4 ? 'quiet' : r < 0.7 ? 'white' : 'brown';
    const db =
      kind === 'quiet'
        ? between(random, -70, -58)
        : kind === 'white'
          ? between(random, -50, -34)
          : between(random, -46, -30);
    noise.push({ kind, level: dbToLinear(db), startSample: start, endSample: end });
    start = end;
  }
  const video: PlannedVideo[] = [];
  const frames = inputs.seconds * FPS;
  for (let first = 0; first < frames; ) {
    const count = Math.min(frames - first, Math.round(between(random, 2, 10) * FPS));
    const r = random();
    const kind: VideoKind = r < 0.45 ? 'motion' : r < 0.8 ? 'still' : 'none';
    const source = pick(random, inputs.videoFrames.length);
    const sourceFrame = pick(random, inputs.videoFrames[source] as number);
    const gain = between(random, 0.7, 1.3);
    const offset = between(random, -25, 25);
    const mirror = random() < 0.5;
    video.push({ kind, firstFrame: first, frames: count, source, sourceFrame, gain, offset, mirror });
    first += count;
  }
  const texts: PlannedText[] = [];
  const every = inputs.textEvery ?? 6;
  for (let t = -Math.log(1 - random()) * every; t < inputs.seconds; t += 0.2 - Math.log(1 - random()) * every)
    texts.push({ time: Math.round(t * 1000) * 1000, transcript: pick(random, inputs.transcripts) });
  return { seconds: inputs.seconds, speech, noise, video, texts };
}

/** The instants each label is on, as sorted disjoint intervals in µs since the session start. */
export function labelIntervals(plan: SessionPlan): Record<DemoLabel, Interval[]> {
  const end = plan.seconds * 1_000_000;
  const clip = (set: readonly Interval[]): Interval[] => intersect(set, [[0, end]]);
  const speech = union(
    plan.speech.map((s) => [sampleTime(s.startSample), sampleTime(s.startSample + s.samples)]),
  );
  const motion = union(
    plan.video
      .filter((v) => v.kind === 'motion')
      .map((v) => [v.firstFrame * FRAME_MICROS, (v.firstFrame + v.frames) * FRAME_MICROS]),
  );
  const typing = union(plan.texts.map((t) => [t.time, t.time + TYPING_HOLD]));
  const recentText = union(plan.texts.map((t) => [t.time, t.time + CONVERSATION_SPAN]));
  const conversation = intersect(extendEnds(speech, CONVERSATION_SPAN), recentText);
  return {
    speech: clip(speech),
    motion: clip(motion),
    typing: clip(typing),
    conversation: clip(conversation),
  };
}

export interface LabelChange {
  /** µs since the session start. */
  readonly time: number;
  readonly labels: Readonly<Record<DemoLabel, 0 | 1>>;
}

/**
 * One label event at the start and one at every instant before `end` where some label changes, each with all four
 * values (none at `end` itself: a label alone in a window past the media would make a window of nothing).
 */
export function labelChanges(
  intervals: Readonly<Record<DemoLabel, readonly Interval[]>>,
  end: number,
): LabelChange[] {
  const times = new Set<number>([0]);
  for (const label of DEMO_LABELS)
    for (const [a, b] of intervals[label]) for (const t of [a, b]) if (t < end) times.add(t);
  const changes: LabelChange[] = [];
  let previous = '';
  for (const time of [...times].sort((a, b) => a - b)) {
    const labels = Object.fromEntries(
      DEMO_LABELS.map((l) => [l, contains(intervals[l], time) ? 1 : 0]),
    ) as Record<DemoLabel, 0 | 1>;
    const key = DEMO_LABELS.map((l) => labels[l]).join('');
    if (key === previous) continue;
    previous = key;
    changes.push({ time, labels });
  }
  return changes;
}
