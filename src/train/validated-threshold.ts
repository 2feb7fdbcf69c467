import type { EventsFile } from '../events/settings.js';
import { DEFAULT_OPERATING_TARGETS } from './operating-points.js';
import type { SelectionCriterion } from './selection.js';

/**
 * The threshold braid train validated for one label: with --validation-data the shipped run is the validated one, so
 * the threshold where its validation scores met the false-positive target on the condition's windows is that run's
 * own, chosen without the recordings it is later evaluated on. A weighted loss (--window-weight) moves where scores
 * sit: runs with distractor=8 met recall 0.95 at thresholds of 0.21-0.28, where the default event threshold of 0.6
 * caught far less speech.
 */
export interface ValidatedThreshold {
  readonly label: string;
  readonly condition: string;
  /** The false-positive target on the condition's windows, as a share. */
  readonly fpr: number;
  /** The lowest score that counts as on: scores at or above it fire, as live events fire at `on`. */
  readonly on: number;
  /** The validation recall there, over every window where the label's target is on. */
  readonly recall: number;
}

/** What validatedThreshold reads of the shipped run's one validation fold. */
interface ValidatedFold {
  readonly validationOperating?: Readonly<
    Record<
      string,
      Readonly<
        Record<string, { readonly recallAtFpr: number | null; readonly thresholdAtFpr: number | null }>
      >
    >
  >;
}

/**
 * The next double above a score: operating points count the scores strictly above their threshold, events and eval
 * those at or above `on`, so `on` is the least value above it.
 */
export function nextScoreAbove(score: number): number {
  if (!(Number.isFinite(score) && score >= 0)) throw new RangeError(`not a score: ${score}`);
  const bits = new BigInt64Array(new Float64Array([score]).buffer);
  bits[0] = (bits[0] as bigint) + 1n;
  return new Float64Array(bits.buffer)[0] as number;
}

/**
 * The threshold of a recall-at-fpr criterion on the shipped run's validation fold; null for the loss criterion, or
 * when the validation windows allow every score to fire (fewer negatives than one false positive's worth).
 */
export function validatedThreshold(
  criterion: SelectionCriterion,
  fold: ValidatedFold,
): ValidatedThreshold | null {
  if (criterion.kind !== 'recall-at-fpr') return null;
  const point = fold.validationOperating?.[criterion.condition]?.[criterion.label];
  if (!point || point.thresholdAtFpr === null || point.recallAtFpr === null) return null;
  return {
    label: criterion.label,
    condition: criterion.condition,
    fpr: DEFAULT_OPERATING_TARGETS.fpr,
    on: nextScoreAbove(point.thresholdAtFpr),
    recall: point.recallAtFpr,
  };
}

/**
 * The model directory's events.json for a validated threshold: the label turns on at `on`, and off below it (no
 * hysteresis, no minimum durations), so its live state is the window decision whose false positives were validated;
 * hysteresis and minimum durations are added with --events or by editing the file.
 */
export const validatedEvents = (t: { readonly label: string; readonly on: number }): EventsFile => ({
  labels: { [t.label]: { on: t.on, off: t.on } },
});
