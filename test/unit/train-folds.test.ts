import { describe, expect, it } from 'vitest';
import { BraidError } from '../../src/core/errors.js';
import { sessionSplits } from '../../src/train/folds.js';

const sessions = Array.from({ length: 11 }, (_, i) => `data/s${i}.mcap`);

describe('sessionSplits', () => {
  it('k folds: every session validates exactly once and never trains in its own fold', () => {
    const splits = sessionSplits(sessions, 4, 7);
    expect(splits).toHaveLength(4);
    const validated = splits.flatMap((s) => s.validation);
    expect([...validated].sort()).toEqual([...sessions].sort());
    for (const split of splits) {
      expect(split.train.filter((s) => split.validation.includes(s))).toEqual([]);
      expect([...split.train, ...split.validation].sort()).toEqual([...sessions].sort());
      expect(split.validation.length === 2 || split.validation.length === 3).toBe(true);
    }
  });

  it('is fixed by the seed and changes with it', () => {
    expect(sessionSplits(sessions, 3, 5)).toEqual(sessionSplits(sessions, 3, 5));
    expect(sessionSplits(sessions, 3, 5)).not.toEqual(sessionSplits(sessions, 3, 6));
  });

  it('one fold is a hold-out of valFraction of the sessions', () => {
    const [split] = sessionSplits(sessions, 1, 1, 0.2);
    expect(split?.validation).toHaveLength(2);
    expect(split?.train).toHaveLength(9);
  });

  it('refuses too few sessions with BRAID_ERR_DATASET', () => {
    expect(() => sessionSplits(['a', 'b'], 3, 1)).toThrowError(/needs at least 3 recordings, got 2/);
    try {
      sessionSplits(['only'], 1, 1);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(BraidError);
      expect((error as BraidError).code).toBe('BRAID_ERR_DATASET');
    }
  });

  it('names the bad option', () => {
    expect(() => sessionSplits(sessions, 0, 1)).toThrowError(/option "folds"/);
    expect(() => sessionSplits(sessions, 1, 1, 1)).toThrowError(/option "valFraction"/);
  });
});
