import { mulberry32 } from '../core/random.js';
import { type ScoredRows, type Thresholds, thresholdOf } from './metrics.js';

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
  threshold: Thresholds = 0.5,
): Record<string, ConditionRates> {
  const out: Record<string, ConditionRates> = {};
  labels.forEach((label, l) => {
    const c = zeroCounts();
    for (const block of blocks)
      addCounts(c, blockCounts(block, l, labels.length, thresholdOf(threshold, label)));
    out[label] = {
      ...c,
      rate: c.negatives === 0 ? null : c.falsePositives / c.negatives,
      otherRate: c.otherNegatives === 0 ? null : c.otherFalsePositives / c.otherNegatives,
      recall: c.positives === 0 ? null : c.truePositives / c.positives,
    };
  });
  return out;
}

/** A central 95 % interval, [low, high]. */
export type Interval = readonly [number, number];

/** How far a label's rates on a condition could move with other recordings of the same kind. */
export interface ConditionIntervals {
  /** Of the false-positive rate where the condition is on; null without such windows. */
  readonly rate: Interval | null;
  /** Of the recall where the condition is on; null without such windows. */
  readonly recall: Interval | null;
}

export interface BootstrapOptions {
  /** The recording (or other unit drawn whole) each block belongs to; default: each block its own. */
  readonly groups?: readonly number[];
  readonly resamples?: number;
  readonly seed?: number;
}

/**
 * 95 % intervals of conditionRates' rate and recall by a bootstrap over recordings: the recordings are drawn with
 * replacement, as many as there are, `resamples` times, and the 2.5th and 97.5th percentiles of the pooled rates are
 * kept. Windows of one recording are not independent (one music clip spans many windows; a voice a whole session), so
 * a binomial interval over windows would be far too narrow; drawing whole recordings keeps that dependence. Seeded:
 * the same inputs give the same intervals.
 */
export function conditionIntervals(
  blocks: readonly ConditionedRows[],
  labels: readonly string[],
  threshold: Thresholds = 0.5,
  options: BootstrapOptions = {},
): Record<string, ConditionIntervals> {
  const groups = options.groups ?? blocks.map((_, i) => i);
  if (groups.length !== blocks.length)
    throw new RangeError(`${groups.length} groups for ${blocks.length} blocks`);
  const resamples = options.resamples ?? 2000;
  const units = [...new Set(groups)];
  const out: Record<string, ConditionIntervals> = {};
  labels.forEach((label, l) => {
    const perUnit = units.map(() => zeroCounts());
    blocks.forEach((block, b) => {
      const unit = perUnit[units.indexOf(groups[b] as number)] as Counts;
      addCounts(unit, blockCounts(block, l, labels.length, thresholdOf(threshold, label)));
    });
    const random = mulberry32(options.seed ?? 1);
    const rates: number[] = [];
    const recalls: number[] = [];
    for (let r = 0; r < resamples; r++) {
      const c = zeroCounts();
      for (let k = 0; k < units.length; k++)
        addCounts(c, perUnit[Math.floor(random() * units.length)] as Counts);
      if (c.negatives > 0) rates.push(c.falsePositives / c.negatives);
      if (c.positives > 0) recalls.push(c.truePositives / c.positives);
    }
    out[label] = { rate: central95(rates), recall: central95(recalls) };
  });
  return out;
}

/** The 2.5th and 97.5th percentiles of some draws (sorted in place); null without any. */
export function central95(values: number[]): Interval | null {
  if (values.length === 0) return null;
  values.sort((a, b) => a - b);
  const at = (q: number): number =>
    values[Math.min(values.length - 1, Math.floor(q * values.length))] as number;
  return [at(0.025), at(0.975)];
}

interface Counts {
  negatives: number;
  falsePositives: number;
  otherNegatives: number;
  otherFalsePositives: number;
  positives: number;
  truePositives: number;
}

const zeroCounts = (): Counts => ({
  negatives: 0,
  falsePositives: 0,
  otherNegatives: 0,
  otherFalsePositives: 0,
  positives: 0,
  truePositives: 0,
});

function addCounts(into: Counts, c: Counts): void {
  into.negatives += c.negatives;
  into.falsePositives += c.falsePositives;
  into.otherNegatives += c.otherNegatives;
  into.otherFalsePositives += c.otherFalsePositives;
  into.positives += c.positives;
  into.truePositives += c.truePositives;
}

/** One block's counts for label l of L. */
function blockCounts(block: ConditionedRows, l: number, L: number, threshold: number): Counts {
  const c = zeroCounts();
  for (let w = 0; w < block.condition.length; w++) {
    const target = block.targets[w * L + l] as number;
    const condition = block.condition[w] as number;
    if (Number.isNaN(target) || Number.isNaN(condition)) continue;
    const fired = (block.scores[w * L + l] as number) >= threshold;
    if (target > 0.5) {
      if (condition > 0.5) {
        c.positives++;
        if (fired) c.truePositives++;
      }
    } else if (condition > 0.5) {
      c.negatives++;
      if (fired) c.falsePositives++;
    } else {
      c.otherNegatives++;
      if (fired) c.otherFalsePositives++;
    }
  }
  return c;
}
