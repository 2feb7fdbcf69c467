import { mulberry32 } from '../core/random.js';
import {
  type BootstrapOptions,
  type ConditionedRows,
  central95,
  type Interval,
} from './condition-metrics.js';

/** The operating points asked for: a false-positive rate on the condition's windows, and a recall. */
export interface OperatingTargets {
  /** The most false positives allowed on the condition's windows, as a share (0.05: 5 %). */
  readonly fpr: number;
  /** The least recall wanted, as a share. */
  readonly recall: number;
}

/** The operating points reported by default (`braid eval`, the training report): those issue 20 asks for. */
export const DEFAULT_OPERATING_TARGETS: OperatingTargets = { fpr: 0.05, recall: 0.95 };

/**
 * What a label could do at any threshold, not only the one it was scored at: two points of its ROC curve, one per
 * target. Comparing models here says which ranks windows better; at a fixed threshold, two runs of one configuration
 * differed more by where their scores sat (speech FPR on distractors 15.4 % against 7.9 %, recall 0.935 against 0.852)
 * than by how well they ranked.
 */
export interface OperatingPoints {
  /**
   * The recall over every window where the label's target is on, at the lowest threshold whose false-positive rate on
   * the condition's negatives (condition on, target off) is at most `targets.fpr`; null without such negatives or
   * without positives.
   */
  readonly recallAtFpr: number | null;
  /** That threshold: the label is on where its score is above it; null when every window may fire. */
  readonly thresholdAtFpr: number | null;
  /** The false-positive rate on the condition's negatives at the highest threshold whose recall is at least `targets.recall`. */
  readonly rateAtRecall: number | null;
  /** That threshold: the label is on where its score is at or above it; null when none needs to fire. */
  readonly thresholdAtRecall: number | null;
}

/** How far a label's operating points could move with other recordings of the same kind. */
export interface OperatingIntervals {
  readonly recallAtFpr: Interval | null;
  readonly rateAtRecall: Interval | null;
}

/** One group's scores of label l: negatives (condition on, target off) and positives (target on, any condition). */
interface Scored {
  readonly negatives: number[];
  readonly positives: number[];
}

function scoredOf(block: ConditionedRows, l: number, L: number, into: Scored): void {
  for (let w = 0; w < block.condition.length; w++) {
    const target = block.targets[w * L + l] as number;
    if (Number.isNaN(target)) continue;
    const score = block.scores[w * L + l] as number;
    if (target > 0.5) into.positives.push(score);
    else {
      const condition = block.condition[w] as number;
      if (!Number.isNaN(condition) && condition > 0.5) into.negatives.push(score);
    }
  }
}

/**
 * The highest threshold at or above which at least `recall` of the positives' scores (sorted ascending) lie; null
 * when there are none or none needs to fire.
 */
export function recallThreshold(positives: Float64Array, recall: number): number | null {
  // At most m positives may be missed: at or above the (m+1)-th lowest positive score at least the rest fire.
  const m = Math.floor((1 - recall) * positives.length + 1e-9);
  return m >= positives.length ? null : (positives[m] as number);
}

/** The two points from scores sorted ascending (negatives and positives each). */
function pointsOf(
  negatives: Float64Array,
  positives: Float64Array,
  targets: OperatingTargets,
): OperatingPoints {
  if (negatives.length === 0 || positives.length === 0)
    return { recallAtFpr: null, thresholdAtFpr: null, rateAtRecall: null, thresholdAtRecall: null };
  // At most k negatives may fire: above the (k+1)-th highest negative score nothing more than k negatives lie (ties at
  // it stay off, so a tie never lets the rate pass the target).
  const k = Math.floor(targets.fpr * negatives.length + 1e-9);
  const thresholdAtFpr = k >= negatives.length ? null : (negatives[negatives.length - 1 - k] as number);
  const recallAtFpr = thresholdAtFpr === null ? 1 : countAbove(positives, thresholdAtFpr) / positives.length;
  const thresholdAtRecall = recallThreshold(positives, targets.recall);
  const rateAtRecall =
    thresholdAtRecall === null ? 0 : countAtOrAbove(negatives, thresholdAtRecall) / negatives.length;
  return { recallAtFpr, thresholdAtFpr, rateAtRecall, thresholdAtRecall };
}

/** Values of an ascending array above t. */
function countAbove(sorted: Float64Array, t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return sorted.length - lo;
}

/** Values of an ascending array at or above t. */
function countAtOrAbove(sorted: Float64Array, t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return sorted.length - lo;
}

const sortedOf = (values: readonly number[]): Float64Array => Float64Array.from(values).sort();

/**
 * Per label, its recall at a false-positive rate on the condition's windows, and its false-positive rate there at a
 * recall (OperatingPoints): the threshold is chosen on the scored windows themselves, so this says what the scores
 * allow, not what a deployed threshold gives (that is conditionRates at `--threshold`).
 */
export function operatingPoints(
  blocks: readonly ConditionedRows[],
  labels: readonly string[],
  targets: OperatingTargets,
): Record<string, OperatingPoints> {
  const out: Record<string, OperatingPoints> = {};
  labels.forEach((label, l) => {
    const scored: Scored = { negatives: [], positives: [] };
    for (const block of blocks) scoredOf(block, l, labels.length, scored);
    out[label] = pointsOf(sortedOf(scored.negatives), sortedOf(scored.positives), targets);
  });
  return out;
}

/**
 * 95 % intervals of operatingPoints' recall and rate by a bootstrap over recordings, drawn whole as conditionIntervals
 * draws them (the threshold is chosen again in every draw). Seeded: the same inputs give the same intervals.
 */
export function operatingIntervals(
  blocks: readonly ConditionedRows[],
  labels: readonly string[],
  targets: OperatingTargets,
  options: BootstrapOptions = {},
): Record<string, OperatingIntervals> {
  const groups = options.groups ?? blocks.map((_, i) => i);
  if (groups.length !== blocks.length)
    throw new RangeError(`${groups.length} groups for ${blocks.length} blocks`);
  const resamples = options.resamples ?? 2000;
  const units = [...new Set(groups)];
  const out: Record<string, OperatingIntervals> = {};
  labels.forEach((label, l) => {
    const perUnit: Scored[] = units.map(() => ({ negatives: [], positives: [] }));
    blocks.forEach((block, b) => {
      scoredOf(block, l, labels.length, perUnit[units.indexOf(groups[b] as number)] as Scored);
    });
    const totalNegatives = perUnit.reduce((n, u) => n + u.negatives.length, 0);
    const totalPositives = perUnit.reduce((n, u) => n + u.positives.length, 0);
    const random = mulberry32(options.seed ?? 1);
    const recalls: number[] = [];
    const rates: number[] = [];
    // Buffers sized for the largest draw possible (every pick the biggest unit), reused across draws.
    const maxNegatives = Math.max(0, ...perUnit.map((u) => u.negatives.length)) * units.length;
    const maxPositives = Math.max(0, ...perUnit.map((u) => u.positives.length)) * units.length;
    const negatives = new Float64Array(maxNegatives);
    const positives = new Float64Array(maxPositives);
    if (totalNegatives > 0 && totalPositives > 0)
      for (let r = 0; r < resamples; r++) {
        let n = 0;
        let p = 0;
        for (let k = 0; k < units.length; k++) {
          const unit = perUnit[Math.floor(random() * units.length)] as Scored;
          for (const v of unit.negatives) negatives[n++] = v;
          for (const v of unit.positives) positives[p++] = v;
        }
        const points = pointsOf(negatives.subarray(0, n).sort(), positives.subarray(0, p).sort(), targets);
        if (points.recallAtFpr !== null) recalls.push(points.recallAtFpr);
        if (points.rateAtRecall !== null) rates.push(points.rateAtRecall);
      }
    out[label] = { recallAtFpr: central95(recalls), rateAtRecall: central95(rates) };
  });
  return out;
}
