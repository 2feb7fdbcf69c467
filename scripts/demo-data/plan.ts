import { contains, extendEnds, type Interval, intersect, union } from './intervals.js';

/** The demo task's labels, in the model's output order. */
export const DEMO_LABELS = ['speech', 'motion', 'typing', 'conversation'] as const;
export type DemoLabel = (typeof DEMO_LABELS)[number];
/**
 * Recorded beside them in sessions with distractor sounds: 1 while one plays. The model is not trained on it
 * (`braid train --labels` names the four); `braid eval` scores false positives on the windows where it is on.
 */
export const DISTRACTOR_LABEL = 'distractor';
/**
 * Recorded in sessions planned with video augmentation: 1 while the camera adds sensor noise (a still or a moving
 * segment); `braid eval --fpr-on sensor_noise` gives motion's false-positive rate on noisy stills.
 */
export const SENSOR_NOISE_LABEL = 'sensor_noise';
/** The label of one voice's speech: `voice_` and the voice's name, other characters than letters and digits as `-`. */
export const voiceLabel = (voice: string): string => `voice_${voice.replace(/[^A-Za-z0-9_-]/g, '-')}`;
/** A distractor keeps this far from speech (one 500 ms window), so no window scored on one holds speech too. */
export const DISTRACTOR_MARGIN = 0.5;

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
  /** Who speaks it, in sessions planned with voice names. */
  readonly voice?: string;
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
  /** Augmentation (sessions planned with `augment`): a box blur of this radius in pixels (0: none) before gain. */
  readonly blur?: number;
  /** Sensor noise: Gaussian, this standard deviation in gray levels, fresh on every frame (a still stays still). */
  readonly noise?: number;
  readonly noiseSeed?: number;
}

export interface PlannedDistractor {
  /** Index into the split's distractor clips, and the clip's first sample used. */
  readonly clip: number;
  readonly offset: number;
  readonly startSample: number;
  readonly samples: number;
  /** Linear gain applied to the clip, so it plays at a speech-like level. */
  readonly gain: number;
  /** Whether this one was made 12 dB quieter than its speech-like level. */
  readonly quiet: boolean;
  /** The clip's kind (music, tones, …). */
  readonly kind: string;
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
  /** Non-speech sounds in the gaps between prompts; absent in sessions planned without distractors (the demo). */
  readonly distractors?: readonly PlannedDistractor[];
  /** Every kind the session could draw, sorted: each gets a `distractor_<kind>` label, on or off. */
  readonly distractorKinds?: readonly string[] /** Every voice the session could draw: each gets a `voice_<name>` label (speech of that voice), on or off. */;
  readonly voices?: readonly string[];
}

/** The distractor clips a session may draw from, and how often and how loud it places them. */
export interface DistractorInputs {
  /** Per clip: its length in samples, its active level (levels.ts) and its kind (kinds are drawn evenly). */
  readonly clips: readonly { readonly samples: number; readonly level: number; readonly kind: string }[];
  /** Active level of each prompt of the split (the level distribution distractors are matched to). */
  readonly promptLevels: readonly number[];
  /** Share of the gaps long enough for one that get one (the others keep only the noise bed). */
  readonly rate?: number;
  /** Share of distractors made 12 dB quieter than speech. */
  readonly quietShare?: number;
}

/** What a session may draw from: lengths of the split's prompts, frame counts of its video sources. */
export interface PlanInputs {
  readonly seconds: number;
  readonly promptSamples: readonly number[];
  readonly transcripts: number;
  readonly videoFrames: readonly number[];
  /** Mean gap between text events, in seconds. */
  readonly textEvery?: number;
  /** Voice of each prompt: when given, a voice is drawn first (evenly), then one of its prompts. */
  readonly promptVoices?: readonly number[];
  /** Names of the voices promptVoices points at: the plan records who speaks each prompt. */
  readonly voiceNames?: readonly string[];
  /** Gaps between prompts, seconds (default 0.5–5). */
  readonly gapSeconds?: readonly [number, number];
  readonly distractors?: DistractorInputs;
  /** Wider camera gain and offset, plus blur and sensor noise per video segment. */
  readonly augment?: boolean;
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
    let fitting = inputs.promptSamples.flatMap((n, i) => (n <= room ? [i] : []));
    if (fitting.length === 0) break;
    const voices = inputs.promptVoices;
    if (voices) {
      const present = [...new Set(fitting.map((i) => voices[i] as number))].sort((a, b) => a - b);
      const voice = present[pick(random, present.length)] as number;
      fitting = fitting.filter((i) => voices[i] === voice);
    }
    const prompt = fitting[pick(random, fitting.length)] as number;
    const samples = inputs.promptSamples[prompt] as number;
    const gain = dbToLinear(between(random, -6, 0));
    const voice = voices && inputs.voiceNames?.[voices[prompt] as number];
    speech.push({ prompt, startSample: cursor, samples, gain, ...(voice !== undefined && { voice }) });
    const [gapLo, gapHi] = inputs.gapSeconds ?? [0.5, 5];
    const gap = Math.round((between(random, gapLo, gapHi) * SAMPLE_RATE) / SAMPLE_GRID) * SAMPLE_GRID;
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
    const gain = inputs.augment ? between(random, 0.5, 1.5) : between(random, 0.7, 1.3);
    const offset = inputs.augment ? between(random, -40, 40) : between(random, -25, 25);
    const mirror = random() < 0.5;
    const segment = { kind, firstFrame: first, frames: count, source, sourceFrame, gain, offset, mirror };
    if (inputs.augment) {
      const r = random();
      const blur = r < 0.5 ? 0 : r < 0.8 ? 1 : 2;
      const noise = random() < 0.4 ? 0 : between(random, 1, 8);
      video.push({ ...segment, blur, noise, noiseSeed: Math.floor(random() * 2 ** 32) });
    } else video.push(segment);
    first += count;
  }
  const texts: PlannedText[] = [];
  const every = inputs.textEvery ?? 6;
  for (let t = -Math.log(1 - random()) * every; t < inputs.seconds; t += 0.2 - Math.log(1 - random()) * every)
    texts.push({ time: Math.round(t * 1000) * 1000, transcript: pick(random, inputs.transcripts) });
  const voiceNames = inputs.voiceNames && { voices: [...inputs.voiceNames] };
  if (inputs.distractors === undefined)
    return { seconds: inputs.seconds, speech, noise, video, texts, ...voiceNames };
  const distractors = planDistractors(random, speech, total, inputs.distractors);
  const distractorKinds = [...new Set(inputs.distractors.clips.map((c) => c.kind))].sort();
  return {
    seconds: inputs.seconds,
    speech,
    noise,
    video,
    texts,
    distractors,
    distractorKinds,
    ...voiceNames,
  };
}

/** Distractors shorter than this are not placed. */
const MIN_DISTRACTOR = 0.4 * SAMPLE_RATE;
const MAX_DISTRACTOR = 5 * SAMPLE_RATE;

/**
 * Places non-speech sounds in the gaps between prompts (and before the first, after the last), each at least
 * DISTRACTOR_MARGIN from speech, in `rate` of the gaps with room for one: a clip of a kind drawn evenly, an excerpt
 * 0.4–5 s long from a random point, at the active level of a random prompt of the split times the prompts' own
 * −6…0 dB gain and ±3 dB, or 12 dB lower than that for `quietShare` of them.
 */
function planDistractors(
  random: () => number,
  speech: readonly PlannedSpeech[],
  total: number,
  inputs: DistractorInputs,
): PlannedDistractor[] {
  const margin = DISTRACTOR_MARGIN * SAMPLE_RATE;
  const kinds = [...new Set(inputs.clips.map((c) => c.kind))].sort();
  const gaps: [number, number][] = [];
  let from = 0;
  for (const s of speech) {
    gaps.push([from === 0 ? 0 : from + margin, s.startSample - margin]);
    from = s.startSample + Math.ceil(s.samples / SAMPLE_GRID) * SAMPLE_GRID;
  }
  gaps.push([from === 0 ? 0 : from + margin, total]);
  const out: PlannedDistractor[] = [];
  for (const [lo, hi] of gaps) {
    const room = hi - lo;
    if (room < MIN_DISTRACTOR || random() >= (inputs.rate ?? 0.85)) continue;
    const kind = kinds[pick(random, kinds.length)] as string;
    const ofKind = inputs.clips.flatMap((c, i) => (c.kind === kind ? [i] : []));
    const clip = ofKind[pick(random, ofKind.length)] as number;
    const { samples: clipSamples, level } = inputs.clips[clip] as DistractorInputs['clips'][number];
    const wanted = between(random, MIN_DISTRACTOR, Math.min(room, MAX_DISTRACTOR));
    const samples = Math.floor(Math.min(wanted, clipSamples) / SAMPLE_GRID) * SAMPLE_GRID;
    const offset = pick(random, clipSamples - samples + 1);
    const startSample = lo + Math.floor((random() * (room - samples)) / SAMPLE_GRID) * SAMPLE_GRID;
    const reference = inputs.promptLevels[pick(random, inputs.promptLevels.length)] as number;
    const quiet = random() < (inputs.quietShare ?? 0.25);
    const db = between(random, -6, 0) + between(random, -3, 3) - (quiet ? 12 : 0);
    out.push({ clip, offset, startSample, samples, gain: (reference * dbToLinear(db)) / level, quiet, kind });
  }
  return out;
}

/**
 * The instants each label is on, as sorted disjoint intervals in µs since the session start; in a session planned
 * with distractors also `distractor`, `distractor_<kind>` for each kind it could draw, and `distractor_quiet` (the
 * ones 12 dB below speech level), so eval can score false positives per kind (`braid eval --fpr-on`); in a session
 * planned with video augmentation also `sensor_noise`, and with voice names `voice_<name>` for each voice (its
 * speech: eval --fpr-on gives speech's recall per voice).
 */
export function labelIntervals(plan: SessionPlan): Record<string, Interval[]> {
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
    ...(plan.distractors && distractorIntervals(plan.distractors, plan.distractorKinds ?? [], clip)),
    ...Object.fromEntries(
      (plan.voices ?? []).map((v) => [
        voiceLabel(v),
        clip(
          union(
            plan.speech
              .filter((s) => s.voice === v)
              .map((s) => [sampleTime(s.startSample), sampleTime(s.startSample + s.samples)]),
          ),
        ),
      ]),
    ),
    ...(plan.video.some((v) => v.noise !== undefined) && {
      [SENSOR_NOISE_LABEL]: clip(
        union(
          plan.video
            .filter((v) => v.kind !== 'none' && (v.noise ?? 0) > 0)
            .map((v) => [v.firstFrame * FRAME_MICROS, (v.firstFrame + v.frames) * FRAME_MICROS]),
        ),
      ),
    }),
  };
}

function distractorIntervals(
  distractors: readonly PlannedDistractor[],
  kinds: readonly string[],
  clip: (set: readonly Interval[]) => Interval[],
): Record<string, Interval[]> {
  const of = (list: readonly PlannedDistractor[]): Interval[] =>
    clip(union(list.map((d) => [sampleTime(d.startSample), sampleTime(d.startSample + d.samples)])));
  return {
    [DISTRACTOR_LABEL]: of(distractors),
    ...Object.fromEntries(
      kinds.map((k) => [`${DISTRACTOR_LABEL}_${k}`, of(distractors.filter((d) => d.kind === k))]),
    ),
    [`${DISTRACTOR_LABEL}_quiet`]: of(distractors.filter((d) => d.quiet)),
  };
}

export interface LabelChange {
  /** µs since the session start. */
  readonly time: number;
  readonly labels: Readonly<Record<string, 0 | 1>>;
}

/**
 * One label event at the start and one at every instant before `end` where some label changes, each with every
 * label's value, in the intervals' order (none at `end` itself: a label alone in a window past the media would make
 * a window of nothing).
 */
export function labelChanges(
  intervals: Readonly<Record<string, readonly Interval[]>>,
  end: number,
): LabelChange[] {
  const names = Object.keys(intervals);
  const times = new Set<number>([0]);
  for (const label of names)
    for (const [a, b] of intervals[label] ?? []) for (const t of [a, b]) if (t < end) times.add(t);
  const changes: LabelChange[] = [];
  let previous = '';
  for (const time of [...times].sort((a, b) => a - b)) {
    const labels = Object.fromEntries(
      names.map((l) => [l, contains(intervals[l] ?? [], time) ? 1 : 0]),
    ) as Record<string, 0 | 1>;
    const key = names.map((l) => labels[l]).join('');
    if (key === previous) continue;
    previous = key;
    changes.push({ time, labels });
  }
  return changes;
}
