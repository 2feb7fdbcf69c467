/** Binary classification figures of one label over windows with a target. */
export interface BinaryMetrics {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  /** ROC AUC; null when the windows hold only one class (it is undefined then). */
  readonly auc: number | null;
  readonly positives: number;
  readonly negatives: number;
  readonly threshold: number;
}

/**
 * ROC AUC as the Mann–Whitney rank statistic: the probability that a random positive scores above a random negative,
 * ties counting one half (average ranks). O(n log n); null when either class is empty.
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number | null {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number),
  );
  let rankSumPositive = 0;
  let positives = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1] as number] === scores[order[i] as number]) j++;
    const averageRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++)
      if (positive[order[k] as number]) {
        rankSumPositive += averageRank;
        positives++;
      }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  return (rankSumPositive - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/**
 * Precision, recall and F1 at `threshold` (score ≥ threshold predicts on; target > 0.5 is on) and ROC AUC. Windows
 * whose target is NaN (no label yet) are left out. Precision with no predicted positive is 0, as is F1 then.
 */
export function binaryMetrics(
  scores: ArrayLike<number>,
  targets: ArrayLike<number>,
  threshold = 0.5,
): BinaryMetrics {
  const kept: number[] = [];
  const truth: boolean[] = [];
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const target = targets[i] as number;
    if (Number.isNaN(target)) continue;
    const score = scores[i] as number;
    const on = target > 0.5;
    const predicted = score >= threshold;
    kept.push(score);
    truth.push(on);
    if (predicted && on) tp++;
    else if (predicted) fp++;
    else if (on) fn++;
  }
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  const positives = tp + fn;
  return {
    precision,
    recall,
    f1,
    auc: rocAuc(kept, truth),
    positives,
    negatives: kept.length - positives,
    threshold,
  };
}

/**
 * The score at or above which a label counts as on: one for every label, or one per label (a model's validated
 * thresholds, `braid eval --threshold events`).
 */
export type Thresholds = number | Readonly<Record<string, number>>;

/** A label's threshold; an error naming the label when a per-label set has none for it. */
export function thresholdOf(thresholds: Thresholds, label: string): number {
  if (typeof thresholds === 'number') return thresholds;
  const t = thresholds[label];
  if (t === undefined) throw new RangeError(`no threshold for label "${label}"`);
  return t;
}

/** Scores and targets of many windows, row-major [windows × labels]. */
export interface ScoredRows {
  readonly scores: Float32Array;
  readonly targets: Float32Array;
}

/** Per-label metrics over row-major score/target blocks (e.g. one per sequence). */
export function labelMetrics(
  blocks: readonly ScoredRows[],
  labels: readonly string[],
  threshold: Thresholds = 0.5,
): Record<string, BinaryMetrics> {
  const out: Record<string, BinaryMetrics> = {};
  const L = labels.length;
  labels.forEach((label, l) => {
    const scores: number[] = [];
    const targets: number[] = [];
    for (const block of blocks)
      for (let i = l; i < block.scores.length; i += L) {
        scores.push(block.scores[i] as number);
        targets.push(block.targets[i] as number);
      }
    out[label] = binaryMetrics(scores, targets, thresholdOf(threshold, label));
  });
  return out;
}

/** Mean F1 over labels: the one-number summary shown while training. */
export const macroF1 = (metrics: Readonly<Record<string, BinaryMetrics>>): number => {
  const values = Object.values(metrics);
  return values.length === 0 ? 0 : values.reduce((a, m) => a + m.f1, 0) / values.length;
};
