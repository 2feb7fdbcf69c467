import { BraidError } from '../core/errors.js';
import type { Model } from '../model/weights.js';
import type { Dataset } from './dataset.js';
import { datasetScores } from './evaluate.js';
import { recallThreshold } from './operating-points.js';

/** A label's threshold chosen on validation recordings for a recall there (`braid ensemble --threshold-at`). */
export interface RecallThreshold {
  readonly label: string;
  /** The recall asked for, as a share. */
  readonly target: number;
  /** The lowest score that counts as on (events and eval fire at or above it). */
  readonly on: number;
  /** The recall reached there, over the validation windows where the label's target is on. */
  readonly recall: number;
  readonly positives: number;
}

/**
 * The highest threshold where `label` still finds `target` of its positive validation windows. Chosen on the positive
 * side only, because that side is what validation recordings can stand for: the validation split of `npm run data`
 * holds speech as hard as held-out speech (recall 0.933 against 0.928 at 0.5 for one ensemble), while its
 * distractor sounds are far easier than unheard ones (a threshold for 5 % false positives on them gave 20 % on the
 * held-out sounds). Throws BRAID_ERR_DATASET when the label has no positive window.
 */
export function thresholdForRecall(
  model: Model,
  dataset: Dataset,
  label: string,
  target: number,
): RecallThreshold {
  const l = dataset.labels.indexOf(label);
  if (l < 0)
    throw new BraidError(
      'BRAID_ERR_DATASET',
      `"${label}" is not a label of the model (${dataset.labels.join(', ')})`,
    );
  const L = dataset.labels.length;
  const scores = datasetScores(model, dataset);
  const positives: number[] = [];
  dataset.sequences.forEach((s, i) => {
    const row = scores[i] as Float32Array;
    for (let w = 0; w < s.y.length / L; w++)
      if ((s.y[w * L + l] as number) > 0.5) positives.push(row[w * L + l] as number);
  });
  const sorted = Float64Array.from(positives).sort();
  const on = recallThreshold(sorted, target);
  if (on === null)
    throw new BraidError(
      'BRAID_ERR_DATASET',
      `no validation window has "${label}" on: no recall to choose a threshold for`,
    );
  const found = sorted.filter((v) => v >= on).length;
  return { label, target, on, recall: found / sorted.length, positives: sorted.length };
}
