import { describe, expect, it } from 'vitest';
import { resolveEventSettings } from '../../src/events/settings.js';
import { conditionRates } from '../../src/train/condition-metrics.js';
import { describeThresholds, eventThresholds } from '../../src/train/evaluate.js';
import { labelMetrics, thresholdOf } from '../../src/train/metrics.js';
import { LOSS_SELECTION, parseSelectionCriterion } from '../../src/train/selection.js';
import { nextScoreAbove, validatedEvents, validatedThreshold } from '../../src/train/validated-threshold.js';

const criterion = parseSelectionCriterion('recall-at-fpr:speech:distractor');
const fold = (thresholdAtFpr: number | null, recallAtFpr: number | null) => ({
  validationOperating: { distractor: { speech: { thresholdAtFpr, recallAtFpr } } },
});

describe('the threshold braid train validates', () => {
  it('is the least double above the operating threshold, so "at or above on" fires exactly what "above it" counted', () => {
    for (const score of [0, 0.25, 0.2137, 0.5, 0.9999999, Math.fround(0.3)]) {
      const on = nextScoreAbove(score);
      expect(on).toBeGreaterThan(score);
      // Nothing lies between: the midpoint rounds to one of the two.
      expect([score, on]).toContain((score + on) / 2);
    }
    expect(() => nextScoreAbove(Number.NaN)).toThrow(/not a score/);
    expect(() => nextScoreAbove(-0.1)).toThrow(/not a score/);
  });

  it("comes from the criterion's label and condition on the shipped run's fold, and only from a recall criterion", () => {
    expect(validatedThreshold(criterion, fold(0.25, 0.96))).toEqual({
      label: 'speech',
      condition: 'distractor',
      fpr: 0.05,
      on: nextScoreAbove(0.25),
      recall: 0.96,
    });
    expect(validatedThreshold(LOSS_SELECTION, fold(0.25, 0.96))).toBeNull();
    // Every window may fire (too few negatives for one false positive): no threshold to ship.
    expect(validatedThreshold(criterion, fold(null, 1))).toBeNull();
    expect(
      validatedThreshold(parseSelectionCriterion('recall-at-fpr:motion:distractor'), fold(0.25, 0.9)),
    ).toBeNull();
  });

  it('becomes events.json with off at on, so the live state is the validated window decision', () => {
    const t = validatedThreshold(criterion, fold(0.25, 0.96));
    if (!t) throw new Error('no threshold');
    const file = validatedEvents(t);
    expect(file).toEqual({ labels: { speech: { on: t.on, off: t.on } } });
    const settings = resolveEventSettings(['speech', 'motion'], file);
    expect(eventThresholds(settings, ['speech', 'motion'])).toEqual({ speech: t.on, motion: 0.6 });
    // It round-trips through JSON exactly.
    expect(JSON.parse(JSON.stringify(file))).toEqual(file);
  });
});

describe('per-label thresholds', () => {
  // Two labels over four windows: speech scores 0.2, 0.3, 0.4, 0.9 (targets 0, 1, 1, 1); motion the same, targets 1.
  const block = {
    scores: Float32Array.from([0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.9, 0.9]),
    targets: Float32Array.from([0, 1, 1, 1, 1, 1, 1, 1]),
    condition: Float32Array.from([1, 1, 1, 1]),
  };
  it('score each label at its own threshold, in window and condition figures alike', () => {
    const metrics = labelMetrics([block], ['speech', 'motion'], { speech: 0.25, motion: 0.5 });
    expect(metrics['speech']).toMatchObject({ recall: 1, precision: 1, threshold: 0.25 });
    expect(metrics['motion']).toMatchObject({ recall: 0.25, threshold: 0.5 });
    const rates = conditionRates([block], ['speech', 'motion'], { speech: 0.1, motion: 0.5 });
    expect(rates['speech']).toMatchObject({ negatives: 1, falsePositives: 1 });
    expect(conditionRates([block], ['speech', 'motion'], 0.25)['speech']).toMatchObject({
      falsePositives: 0,
    });
  });

  it('name a label they lack, and read back in the report', () => {
    expect(() => thresholdOf({ speech: 0.3 }, 'motion')).toThrow(/no threshold for label "motion"/);
    expect(thresholdOf(0.5, 'motion')).toBe(0.5);
    expect(describeThresholds(0.5)).toBe('0.5');
    expect(describeThresholds({ speech: nextScoreAbove(0.2137), motion: 0.6 })).toBe(
      "per label (their events' on): speech 0.2137, motion 0.6",
    );
  });
});
