import { BraidError } from '../core/errors.js';
import type { SourceEvent } from '../core/events.js';
import type { Micros } from '../core/time.js';

/** One label's values as a step function of time: `values[i]` holds from `times[i]` until `times[i + 1]`. */
interface Steps {
  readonly times: number[];
  readonly values: number[];
}

/**
 * The ground truth of one stream, rebuilt from its label events: each named label is a step function that takes an
 * event's value at the event's time and keeps it until the next event that names the same label. Events that do not
 * name a label leave it unchanged, so a source may send only the labels that changed.
 */
export class LabelTrack {
  readonly #steps = new Map<string, Steps>();

  private constructor(readonly streamId: string) {}

  /**
   * Builds the track from one stream's label events (any order; ties on time are broken by seq, so the later event
   * wins). Throws BRAID_ERR_DATASET for a value outside [0, 1]: targets are probabilities for the sigmoid head.
   */
  static fromEvents(streamId: string, events: readonly SourceEvent<'label'>[]): LabelTrack {
    const track = new LabelTrack(streamId);
    const sorted = [...events].sort((a, b) => a.time - b.time || a.seq - b.seq);
    for (const event of sorted)
      for (const [name, value] of Object.entries(event.payload.labels)) {
        if (!(value >= 0 && value <= 1))
          throw new BraidError(
            'BRAID_ERR_DATASET',
            `stream "${streamId}": label "${name}" at ${event.time} µs is ${value}; label values must be in [0, 1] (0 = off, 1 = on)`,
          );
        let steps = track.#steps.get(name);
        if (steps === undefined) track.#steps.set(name, (steps = { times: [], values: [] }));
        const last = steps.times.length - 1;
        // Same time twice: the later event replaces the earlier one instead of leaving a zero-length step.
        if (last >= 0 && steps.times[last] === event.time) steps.values[last] = value;
        else {
          steps.times.push(event.time);
          steps.values.push(value);
        }
      }
    return track;
  }

  /** Label names in the order they first appear in time. */
  get names(): string[] {
    return [...this.#steps.entries()]
      .sort((a, b) => (a[1].times[0] as number) - (b[1].times[0] as number))
      .map(([name]) => name);
  }

  has(name: string): boolean {
    return this.#steps.has(name);
  }

  /** The value in force at time `t` (the latest event at or before `t`), or undefined before the label's first event. */
  valueAt(name: string, t: Micros): number | undefined {
    const steps = this.#steps.get(name);
    if (steps === undefined) return undefined;
    const { times, values } = steps;
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((times[mid] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? undefined : values[lo - 1];
  }

  /**
   * A window's target: the value in force at the window's end — precisely at its last instant, end − 1 µs, since a
   * window is [start, end) and a label event at `end` belongs to the next window. It uses nothing after the window,
   * so a causal model can be asked for it the moment the window closes. Undefined (no target) before the first event.
   */
  windowTarget(name: string, windowEnd: Micros): number | undefined {
    return this.valueAt(name, windowEnd - 1);
  }

  /**
   * Times in [from, to) where the label turns on (its value goes above 0.5 from at most 0.5 or from no value), and
   * `from` itself when it is on there already: the true onsets a stream seen from `from` has, to score events by.
   */
  onsets(name: string, from: Micros, to: Micros): Micros[] {
    const steps = this.#steps.get(name);
    if (steps === undefined) return [];
    const out: Micros[] = [];
    let on = (this.valueAt(name, from) ?? 0) > 0.5;
    if (on) out.push(from);
    steps.times.forEach((t, i) => {
      if (t <= from || t >= to) return;
      const next = (steps.values[i] as number) > 0.5;
      if (next && !on) out.push(t);
      on = next;
    });
    return out;
  }
}
