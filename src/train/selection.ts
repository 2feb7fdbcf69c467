import { BraidError } from '../core/errors.js';
import { DEFAULT_OPERATING_TARGETS } from './operating-points.js';

/**
 * How cross-validation picks the hidden size: the lowest mean best validation loss, or the highest mean validation
 * recall of a learnt label at 5 % false positives on the windows where a recorded label is on (ties: the lower loss).
 * Loss ranks runs by how well they fit the average window; on the demo task it disagreed with how runs ranked speech
 * against non-speech sounds they had never heard, which is what issue 20 asks of the model.
 */
export type SelectionCriterion =
  | { readonly kind: 'loss' }
  | { readonly kind: 'recall-at-fpr'; readonly label: string; readonly condition: string };

export const LOSS_SELECTION: SelectionCriterion = { kind: 'loss' };

/** `loss` or `recall-at-fpr:LABEL:CONDITION` (e.g. `recall-at-fpr:speech:distractor`); the error says what is wrong. */
export function parseSelectionCriterion(text: string): SelectionCriterion {
  const trimmed = text.trim();
  if (trimmed === 'loss') return LOSS_SELECTION;
  const match = /^recall-at-fpr:([^:\s]+):([^:\s]+)$/.exec(trimmed);
  if (!match)
    throw new Error(
      `must be "loss" or "recall-at-fpr:LABEL:CONDITION" (e.g. recall-at-fpr:speech:distractor), got "${text}"`,
    );
  return { kind: 'recall-at-fpr', label: match[1] as string, condition: match[2] as string };
}

/** The report's words for a criterion. */
export function describeSelection(criterion: SelectionCriterion): string {
  return criterion.kind === 'loss'
    ? 'mean best validation loss over folds'
    : `mean validation recall of ${criterion.label} at ${DEFAULT_OPERATING_TARGETS.fpr * 100} % false positives on ${criterion.condition}, over folds (ties: lower loss)`;
}

/** The recorded labels a criterion needs read with the dataset. */
export const selectionConditions = (criterion: SelectionCriterion): string[] =>
  criterion.kind === 'loss' ? [] : [criterion.condition];

/** What selection needs of one size's folds. */
export interface SelectableSize {
  readonly hidden: number;
  readonly meanValLoss: number;
  readonly folds: readonly {
    readonly validationOperating?: Readonly<
      Record<string, Readonly<Record<string, { readonly recallAtFpr: number | null }>>>
    >;
  }[];
}

/** The mean over a size's folds of `label`'s validation recall at 5 % FPR on `condition`; null if a fold has none. */
export function meanFoldRecallAtFpr(size: SelectableSize, condition: string, label: string): number | null {
  const values = size.folds.map((f) => f.validationOperating?.[condition]?.[label]?.recallAtFpr ?? null);
  if (values.some((v) => v === null)) return null;
  return (values as number[]).reduce((a, v) => a + v, 0) / values.length;
}

/** The mean over folds of the criterion's recall; an error naming the fold that has none (no such windows to rank). */
export function meanRecallAtFpr(
  size: SelectableSize,
  criterion: Extract<SelectionCriterion, { kind: 'recall-at-fpr' }>,
): number {
  const mean = meanFoldRecallAtFpr(size, criterion.condition, criterion.label);
  if (mean !== null) return mean;
  const fold = size.folds.findIndex(
    (f) => (f.validationOperating?.[criterion.condition]?.[criterion.label]?.recallAtFpr ?? null) === null,
  );
  throw new BraidError(
    'BRAID_ERR_DATASET',
    `--select-by ${criterion.kind}:${criterion.label}:${criterion.condition}: fold ${fold + 1} of hidden ${size.hidden} has no validation windows where "${criterion.condition}" is on and "${criterion.label}" off, or none where "${criterion.label}" is on, to rank`,
  );
}

/** The size the criterion prefers among usable ones (at least one). */
export function chooseSize<S extends SelectableSize>(sizes: readonly S[], criterion: SelectionCriterion): S {
  const byLoss = (a: S, b: S) => (b.meanValLoss < a.meanValLoss ? b : a);
  if (criterion.kind === 'loss') return sizes.reduce(byLoss);
  const scored = sizes.map((s) => ({ size: s, recall: meanRecallAtFpr(s, criterion) }));
  return scored.reduce((best, s) =>
    s.recall > best.recall || (s.recall === best.recall && s.size.meanValLoss < best.size.meanValLoss)
      ? s
      : best,
  ).size;
}
