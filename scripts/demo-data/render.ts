import type { AnySourceEvent, Modality } from '../../src/core/events.js';
import { audioFrameTime, type Micros } from '../../src/core/time.js';
import { mulberry32 } from '../../src/model/weights.js';
import { McapRecorder } from '../../src/record/recorder.js';
import type { DistractorClip } from './distractors.js';
import { FRAME_HEIGHT, FRAME_WIDTH, type SpeechPrompt, type VideoSource } from './media.js';
import {
  FPS,
  labelChanges,
  labelIntervals,
  type PlannedVideo,
  SAMPLE_RATE,
  type SessionPlan,
} from './plan.js';

/** What one split (train or held-out) may use: its own prompts, transcripts, video frames and distractor sounds. */
export interface SplitMedia {
  readonly prompts: readonly SpeechPrompt[];
  readonly transcripts: readonly string[];
  readonly videos: readonly VideoSource[];
  readonly distractors?: readonly DistractorClip[];
}

export interface RenderOptions {
  readonly streamId: string;
  /** Originating time of the session's first sample, µs. */
  readonly t0: Micros;
  /** Seeds the noise bed. */
  readonly random: () => number;
}

/** 20 ms of 16 kHz audio per event, as a browser audio worklet would send. */
export const AUDIO_FRAME_SAMPLES = 320;
const FRAME_MICROS = 1_000_000 / FPS;

/** Approximately normal noise (sum of four uniforms, variance 1/3 scaled to 1). */
const gaussian = (random: () => number): number =>
  (random() + random() + random() + random() - 2) * Math.sqrt(3);

function noiseBed(plan: SessionPlan, random: () => number): Float32Array {
  const out = new Float32Array(plan.seconds * SAMPLE_RATE);
  for (const segment of plan.noise) {
    const n = segment.endSample - segment.startSample;
    const raw = new Float64Array(n);
    let brown = 0;
    for (let i = 0; i < n; i++) {
      const white = gaussian(random);
      brown = 0.98 * brown + white;
      raw[i] = segment.kind === 'brown' ? brown : white;
    }
    let power = 0;
    for (const v of raw) power += v * v;
    const scale = power > 0 ? segment.level / Math.sqrt(power / n) : 0;
    for (let i = 0; i < n; i++) out[segment.startSample + i] = (raw[i] as number) * scale;
  }
  return out;
}

function renderAudio(plan: SessionPlan, media: SplitMedia, random: () => number): Int16Array {
  const mix = noiseBed(plan, random);
  for (const s of plan.speech) {
    const prompt = (media.prompts[s.prompt] as SpeechPrompt).samples;
    for (let i = 0; i < s.samples; i++)
      mix[s.startSample + i] = (mix[s.startSample + i] as number) + ((prompt[i] as number) / 32768) * s.gain;
  }
  for (const d of plan.distractors ?? []) {
    const clip = media.distractors?.[d.clip]?.samples;
    if (clip === undefined) throw new Error(`distractor clip ${d.clip} is not among the split's`);
    for (let i = 0; i < d.samples; i++)
      mix[d.startSample + i] =
        (mix[d.startSample + i] as number) + ((clip[d.offset + i] as number) / 32768) * d.gain;
  }
  return Int16Array.from(mix, (v) => Math.max(-32768, Math.min(32767, Math.round(v * 32768))));
}

/** A box blur of radius r (a defocused camera), edges clamped. */
function boxBlur(frame: Uint8Array, r: number): Float64Array {
  const out = new Float64Array(frame.length);
  for (let y = 0; y < FRAME_HEIGHT; y++)
    for (let x = 0; x < FRAME_WIDTH; x++) {
      let sum = 0;
      for (let dy = -r; dy <= r; dy++)
        for (let dx = -r; dx <= r; dx++) {
          const yy = Math.max(0, Math.min(FRAME_HEIGHT - 1, y + dy));
          const xx = Math.max(0, Math.min(FRAME_WIDTH - 1, x + dx));
          sum += frame[yy * FRAME_WIDTH + xx] as number;
        }
      out[y * FRAME_WIDTH + x] = sum / (2 * r + 1) ** 2;
    }
  return out;
}

/**
 * A segment's camera look: blur, gain and offset on the gray levels, sensor noise (drawn from `noise`, fresh per
 * frame), clamped, optionally mirrored left-right.
 */
function adjust(frame: Uint8Array, segment: PlannedVideo, noise?: () => number): Uint8Array {
  const source = segment.blur ? boxBlur(frame, segment.blur) : frame;
  const sd = segment.noise ?? 0;
  const out = new Uint8Array(frame.length);
  for (let y = 0; y < FRAME_HEIGHT; y++)
    for (let x = 0; x < FRAME_WIDTH; x++) {
      const from = y * FRAME_WIDTH + (segment.mirror ? FRAME_WIDTH - 1 - x : x);
      let v = segment.gain * (source[from] as number) + segment.offset;
      if (sd > 0 && noise) v += sd * gaussian(noise);
      out[y * FRAME_WIDTH + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  return out;
}

const ORDER: Record<Modality, number> = { audio: 0, video: 1, text: 2, label: 3 };

/** The session as source events of one stream, in (time, modality) order. */
export function renderSession(
  plan: SessionPlan,
  media: SplitMedia,
  options: RenderOptions,
): AnySourceEvent[] {
  const { streamId, t0 } = options;
  const events: AnySourceEvent[] = [];
  const pcm = renderAudio(plan, media, options.random);
  for (let i = 0, seq = 0; i + AUDIO_FRAME_SAMPLES <= pcm.length; i += AUDIO_FRAME_SAMPLES, seq++)
    events.push({
      streamId,
      modality: 'audio',
      time: audioFrameTime(t0, i, SAMPLE_RATE),
      seq,
      payload: { sampleRate: SAMPLE_RATE, channels: 1, samples: pcm.slice(i, i + AUDIO_FRAME_SAMPLES) },
    });
  let videoSeq = 0;
  for (const segment of plan.video) {
    if (segment.kind === 'none') continue;
    const frames = (media.videos[segment.source] as VideoSource).frames;
    const noise = segment.noiseSeed === undefined ? undefined : mulberry32(segment.noiseSeed);
    for (let k = 0; k < segment.frames; k++) {
      const source =
        segment.kind === 'motion' ? (segment.sourceFrame + k) % frames.length : segment.sourceFrame;
      events.push({
        streamId,
        modality: 'video',
        time: t0 + (segment.firstFrame + k) * FRAME_MICROS,
        seq: videoSeq++,
        payload: {
          format: 'gray',
          width: FRAME_WIDTH,
          height: FRAME_HEIGHT,
          data: adjust(frames[source] as Uint8Array, segment, noise),
        },
      });
    }
  }
  plan.texts.forEach((t, seq) => {
    events.push({
      streamId,
      modality: 'text',
      time: t0 + t.time,
      seq,
      payload: { text: media.transcripts[t.transcript] as string },
    });
  });
  labelChanges(labelIntervals(plan), plan.seconds * 1_000_000).forEach((change, seq) => {
    events.push({
      streamId,
      modality: 'label',
      time: t0 + change.time,
      seq,
      payload: { labels: { ...change.labels } },
    });
  });
  return events.sort((a, b) => a.time - b.time || ORDER[a.modality] - ORDER[b.modality] || a.seq - b.seq);
}

/** Writes events to a new MCAP file; receive time = originating time, so the file depends on the seed only. */
export async function writeSession(
  file: string,
  events: readonly AnySourceEvent[],
  metadata: Readonly<Record<string, string>>,
): Promise<void> {
  const recorder = await McapRecorder.create(file, { overwrite: true, metadata, zstdLevel: 9 });
  try {
    for (const event of events) await recorder.write(event, event.time);
  } finally {
    await recorder.close();
  }
}
