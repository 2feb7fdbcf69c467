import { BraidError, InvalidOptionError } from '../core/errors.js';
import { mulberry32 } from '../model/weights.js';
import { shuffleInPlace } from './shuffle.js';

/** Sessions (recordings) that train and those that validate: a session is never on both sides. */
export interface SessionSplit {
  readonly train: readonly string[];
  readonly validation: readonly string[];
}

/**
 * Splits BY SESSION, so windows of one recording never sit on both sides (they are strongly correlated: splitting
 * windows would leak). `folds` ≥ 2 gives k-fold cross-validation: the sessions are shuffled with the seed and dealt
 * round-robin, so every session validates exactly once and fold sizes differ by at most one. `folds` = 1 gives one
 * hold-out split with round(valFraction × sessions) (at least 1) validation sessions.
 */
export function sessionSplits(
  sessions: readonly string[],
  folds: number,
  seed: number,
  valFraction = 0.2,
): SessionSplit[] {
  if (!Number.isInteger(folds) || folds < 1)
    throw new InvalidOptionError('folds', `must be a whole number >= 1, got ${folds}`);
  if (!(valFraction > 0 && valFraction < 1))
    throw new InvalidOptionError('valFraction', `must be between 0 and 1, got ${valFraction}`);
  const distinct = [...new Set(sessions)];
  const needed = Math.max(2, folds);
  if (distinct.length < needed)
    throw new BraidError(
      'BRAID_ERR_DATASET',
      `${folds === 1 ? 'a hold-out split' : `${folds}-fold cross-validation`} by session needs at least ${needed} recordings, got ${distinct.length}`,
    );
  const order = shuffleInPlace([...distinct], mulberry32(seed));
  if (folds === 1) {
    const k = Math.min(distinct.length - 1, Math.max(1, Math.round(valFraction * distinct.length)));
    const validation = new Set(order.slice(0, k));
    return [split(distinct, validation)];
  }
  return Array.from({ length: folds }, (_, f) =>
    split(distinct, new Set(order.filter((_, i) => i % folds === f))),
  );
}

/** Keeps the caller's session order on both sides, so training order does not depend on the shuffle. */
function split(sessions: readonly string[], validation: ReadonlySet<string>): SessionSplit {
  return {
    train: sessions.filter((s) => !validation.has(s)),
    validation: sessions.filter((s) => validation.has(s)),
  };
}
