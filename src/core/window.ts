import type { Modality } from './events.js';
import type { Micros } from './time.js';

/**
 * A closed event-time window of one stream: [start, end) in µs. `index` is k in start = origin + k × hop, so gaps
 * between consecutive windows show as gaps in the index. `contents` holds, per modality, what the window's
 * aggregator made of that modality's events (raw event lists by default, feature vectors in the live pipeline).
 */
export interface Window<C = unknown> {
  readonly streamId: string;
  readonly index: number;
  readonly start: Micros;
  readonly end: Micros;
  readonly contents: Readonly<Partial<Record<Modality, C>>>;
  /** Events per modality that fell in the window. */
  readonly counts: Readonly<Record<Modality, number>>;
  /** Presence mask: the modality had at least one event in the window. */
  readonly present: Readonly<Record<Modality, boolean>>;
  /** Modalities whose source was idle (no events for the idle timeout) when the window closed. */
  readonly missing: readonly Modality[];
  /** Why it closed: the watermark passed, a source went idle, the stream ended, or a buffer cap forced it. */
  readonly closedBy: 'watermark' | 'idle' | 'flush' | 'buffer_cap';
  /** Some of the window's events were lost before they reached braid (a `gap` control); absent when none were. */
  readonly partial?: true;
}

/** One incremental prediction: the model's output for one window of one stream, after its hidden state advanced. */
export interface Prediction {
  readonly streamId: string;
  readonly windowIndex: number;
  readonly windowStart: Micros;
  readonly windowEnd: Micros;
  /** Score in [0, 1] per label name, in the model's label order. */
  readonly scores: Readonly<Record<string, number>>;
  readonly present: Readonly<Record<Modality, boolean>>;
  /** The window lost some of its data on the way (see Window.partial). */
  readonly partial?: true;
}

export const emptyModalityRecord = <T>(value: T): Record<Modality, T> => ({
  audio: value,
  video: value,
  text: value,
  label: value,
});
