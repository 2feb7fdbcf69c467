import type { Micros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import { EventTracker } from '../events/event-tracker.js';
import type { LabelEventSettings } from '../events/settings.js';
import type { Sequence } from './dataset.js';

/** How well a label's `on` events find the true onsets (docs/model.md, "Events"). */
export interface OnsetMetrics {
  /** True onsets (the label turning on in the recordings' labels). */
  readonly onsets: number;
  /** `on` events the state machine made from the model's scores. */
  readonly predicted: number;
  /** Onsets matched one to one with an `on` event within the tolerance. */
  readonly matched: number;
  readonly missed: number;
  /** `on` events matched to no onset. */
  readonly false: number;
  /** Mean |event time − onset| over the matched, in ms; null when none matched. */
  readonly meanAbsErrorMs: number | null;
  /** Mean event time − onset (positive: late) over the matched, in ms; null when none matched. */
  readonly meanErrorMs: number | null;
}

export interface EventEvaluation {
  readonly toleranceMs: number;
  readonly labels: Readonly<Record<string, OnsetMetrics>>;
}

/**
 * Pairs onsets with events in time order: each onset takes the earliest event not yet taken within ±tolerance of it,
 * so one event never counts for two onsets. Returns the signed errors (event − onset) of the pairs.
 */
export function matchOnsets(
  onsets: readonly Micros[],
  events: readonly Micros[],
  tolerance: Micros,
): number[] {
  const sortedEvents = [...events].sort((a, b) => a - b);
  const taken = new Array<boolean>(sortedEvents.length).fill(false);
  const errors: number[] = [];
  let from = 0;
  for (const onset of [...onsets].sort((a, b) => a - b)) {
    while (from < sortedEvents.length && (sortedEvents[from] as number) < onset - tolerance) from++;
    for (let i = from; i < sortedEvents.length && (sortedEvents[i] as number) <= onset + tolerance; i++)
      if (!taken[i]) {
        taken[i] = true;
        errors.push((sortedEvents[i] as number) - onset);
        break;
      }
  }
  return errors;
}

/**
 * Event-level figures: each sequence's scores (windows × labels, the model's head applied) through the live event
 * state machine, from a fresh state as the model is, and its `on` events matched against the sequence's true onsets.
 */
export function evaluateEvents(
  sequences: readonly Sequence[],
  scores: readonly Float32Array[],
  labels: readonly string[],
  settings: LabelEventSettings,
  tolerance: Micros,
): EventEvaluation {
  const totals = labels.map(() => ({ onsets: 0, predicted: 0, errors: [] as number[] }));
  sequences.forEach((sequence, k) => {
    const tracker = new EventTracker(settings);
    const on = labels.map((): Micros[] => []);
    const rows = scores[k] as Float32Array;
    sequence.windows.forEach((w, t) => {
      const p: Prediction = {
        streamId: 'eval',
        windowIndex: w.index,
        windowStart: w.start,
        windowEnd: w.end,
        scores: Object.fromEntries(labels.map((l, j) => [l, rows[t * labels.length + j] as number])),
        present: { audio: true, video: true, text: true, label: false },
      };
      for (const e of tracker.observe(p)) if (e.state === 'on') on[labels.indexOf(e.label)]?.push(e.time);
    });
    labels.forEach((label, j) => {
      const total = totals[j]!;
      const truth = sequence.onsets?.[label] ?? [];
      total.onsets += truth.length;
      total.predicted += on[j]!.length;
      total.errors.push(...matchOnsets(truth, on[j]!, tolerance));
    });
  });
  const mean = (xs: number[]) => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length / 1000);
  return {
    toleranceMs: tolerance / 1000,
    labels: Object.fromEntries(
      labels.map((label, j) => {
        const { onsets, predicted, errors } = totals[j]!;
        return [
          label,
          {
            onsets,
            predicted,
            matched: errors.length,
            missed: onsets - errors.length,
            false: predicted - errors.length,
            meanAbsErrorMs: mean(errors.map(Math.abs)),
            meanErrorMs: mean(errors),
          },
        ];
      }),
    ),
  };
}
