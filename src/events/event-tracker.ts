import type { Micros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import {
  closeLabel,
  INITIAL_LABEL_STATE,
  type LabelChange,
  type LabelState,
  stepLabel,
} from './label-state.js';
import { type LabelEventSettings, settingsFor } from './settings.js';

/** A label of a stream turned on or off at `time` (capture µs), in the window `windowIndex`, with its score. */
export interface LabelEvent {
  readonly streamId: string;
  readonly label: string;
  readonly state: 'on' | 'off';
  readonly time: Micros;
  readonly score: number;
  readonly windowIndex: number;
  /** The off of a label that was on when its stream closed (or its timeline started again). */
  readonly closed?: true;
}

interface StreamState {
  readonly labels: Map<string, LabelState>;
  last: Prediction;
}

/**
 * Every stream's label states (label-state.ts), fed one stream's predictions in window order; streams interleave
 * freely, since each keeps its own state. Events come out in the order they are known (a label's change that needed
 * a minimum duration is told after another's that did not), each with the capture time it happened at. State is
 * kept for streams not yet closed.
 */
export class EventTracker {
  readonly #streams = new Map<string, StreamState>();

  constructor(readonly settings: LabelEventSettings) {}

  get streams(): number {
    return this.#streams.size;
  }

  /** The events one prediction makes, in the model's label order. */
  observe(p: Prediction): LabelEvent[] {
    const events: LabelEvent[] = [];
    let stream = this.#streams.get(p.streamId);
    // A window index that does not move on is a new timeline (a restart): what was on ends where the old one did.
    if (stream && p.windowIndex <= stream.last.windowIndex) {
      events.push(...this.close(p.streamId));
      stream = undefined;
    }
    const boundary = stream ? Math.max(stream.last.windowEnd, p.windowStart) : p.windowStart;
    if (!stream) {
      stream = { labels: new Map(), last: p };
      this.#streams.set(p.streamId, stream);
    }
    stream.last = p;
    for (const [label, score] of Object.entries(p.scores)) {
      const before = stream.labels.get(label) ?? INITIAL_LABEL_STATE;
      const { state, change } = stepLabel(before, settingsFor(this.settings, label), {
        score,
        windowIndex: p.windowIndex,
        boundary,
        windowEnd: p.windowEnd,
      });
      stream.labels.set(label, state);
      if (change) events.push(eventOf(p.streamId, label, change));
    }
    return events;
  }

  /** The stream ended after its last prediction: every label still on turns off, marked closed. */
  close(streamId: string): LabelEvent[] {
    const stream = this.#streams.get(streamId);
    if (!stream) return [];
    this.#streams.delete(streamId);
    const events: LabelEvent[] = [];
    for (const [label, state] of stream.labels) {
      const change = closeLabel(state, {
        windowEnd: stream.last.windowEnd,
        windowIndex: stream.last.windowIndex,
        score: stream.last.scores[label] ?? 0,
      });
      if (change) events.push({ ...eventOf(streamId, label, change), closed: true });
    }
    return events;
  }

  /** Ids of the streams followed, for closing them all at the end of an input. */
  streamIds(): string[] {
    return [...this.#streams.keys()];
  }

  /** Forgets every stream without events (a pipeline that restarts with fresh state). */
  reset(): void {
    this.#streams.clear();
  }
}

const eventOf = (streamId: string, label: string, c: LabelChange): LabelEvent => ({
  streamId,
  label,
  state: c.state,
  time: c.time,
  score: c.score,
  windowIndex: c.windowIndex,
});

/** One event as an NDJSON line with a fixed key order and the score rounded to 6 decimals, as predictions are. */
export function eventLine(e: LabelEvent): string {
  return `${JSON.stringify({
    streamId: e.streamId,
    label: e.label,
    state: e.state,
    time: e.time,
    score: Math.round(e.score * 1e6) / 1e6,
    windowIndex: e.windowIndex,
    ...(e.closed && { closed: true }),
  })}\n`;
}
