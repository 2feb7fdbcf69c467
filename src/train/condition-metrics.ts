import type { ScoredRows } from './metrics.js';

/** How often a label fires where it should not, split by whether a condition (e.g. `distractor`) is on. */
export interface ConditionRates {
  /** Windows where the condition is on and the label's target is off. */
  readonly negatives: number;
  /** Of those, windows scored at or above the threshold. */
  readonly falsePositives: number;
  /** falsePositives / negatives; null without such windows. */
  readonly rate: number | null;
  /** The same over windows where the condition is off (0) and the label's target is off, for comparison. */
  readonly otherNegatives: number;
  readonly otherFalsePositives: number;
  readonly otherRate: number | null;
  /** Windows where the condition is on and the label's target is on, those scored on, and their share (recall). */
  readonly positives: number;
  readonly truePositives: number;
  readonly recall: number | null;
}

/** Scores and targets of some windows with the condition's values at the same windows' ends (NaN: unknown). */
export interface ConditionedRows extends ScoredRows {
  readonly condition: Float32Array;
}

/**
 * Per label, the false-positive rate on the windows where `condition` is on (> 0.5) at the window's end — the instant
 * targets are taken at — and the label's target is off (≤ 0.5), and on the windows where the condition is off and the
 * target is off; and the recall on the windows where the condition is on and the target is on (e.g. speech of one
 * voice). Windows without a target or without a condition value count in none of them.
 */
export function conditionRates(
  blocks: readonly ConditionedRows[],
  labels: readonly string[],
  threshold = 0.5,
): Record<string, ConditionRates> {
  const L = labels.length;
  const out: Record<string, ConditionRates> = {};
  labels.forEach((label, l) => {
    let negatives = 0;
    let falsePositives = 0;
    let otherNegatives = 0;
    let otherFalsePositives = 0;
    let positives = 0;
    let truePositives = 0;
    for (const block of blocks)
      for (let w = 0; w < block.condition.length; w++) {
        const target = block.targets[w * L + l] as number;
        const condition = block.condition[w] as number;
        if (Number.isNaN(target) || Number.isNaN(condition)) continue;
        const fired = (block.scores[w * L + l] as number) >= threshold;
        if (target > 0.5) {
          if (condition > 0.5) {
            positives++;
            if (fired) truePositives++;
          }
        } else if (condition > 0.5) {
          negatives++;
          if (fired) falsePositives++;
        } else {
          otherNegatives++;
          if (fired) otherFalsePositives++;
        }
      }
    out[label] = {
      negatives,
      falsePositives,
      rate: negatives === 0 ? null : falsePositives / negatives,
      otherNegatives,
      otherFalsePositives,
      otherRate: otherNegatives === 0 ? null : otherFalsePositives / otherNegatives,
      positives,
      truePositives,
      recall: positives === 0 ? null : truePositives / positives,
    };
  });
  return out;
}
