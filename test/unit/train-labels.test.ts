import { describe, expect, it } from 'vitest';
import type { SourceEvent } from '../../src/core/events.js';
import { LabelTrack } from '../../src/train/labels.js';

const label = (time: number, seq: number, labels: Record<string, number>): SourceEvent<'label'> => ({
  streamId: 's',
  modality: 'label',
  time,
  seq,
  payload: { labels },
});

describe('LabelTrack', () => {
  const track = LabelTrack.fromEvents('s', [
    label(1_000_000, 1, { speech: 1 }),
    label(0, 0, { speech: 0, motion: 0 }),
    label(1_500_000, 2, { motion: 1 }),
    label(1_500_000, 3, { motion: 0 }),
  ]);

  it('holds each value from its event until the next event naming the same label', () => {
    expect(track.valueAt('speech', 999_999)).toBe(0);
    expect(track.valueAt('speech', 1_000_000)).toBe(1);
    expect(track.valueAt('speech', 9_000_000)).toBe(1);
    // An event naming only `motion` leaves `speech` alone.
    expect(track.valueAt('motion', 1_200_000)).toBe(0);
  });

  it('lets the later of two events at the same time win (by seq)', () => {
    expect(track.valueAt('motion', 1_500_000)).toBe(0);
  });

  it('targets a window with the value in force at its last instant, end − 1 µs', () => {
    // Window [0.5 s, 1 s): the speech event at exactly 1 s belongs to the next window.
    expect(track.windowTarget('speech', 1_000_000)).toBe(0);
    expect(track.windowTarget('speech', 1_000_001)).toBe(1);
  });

  it('has no target before a label first appears, and lists names by first appearance', () => {
    const late = LabelTrack.fromEvents('s', [label(2_000_000, 0, { b: 1 }), label(3_000_000, 1, { a: 1 })]);
    expect(late.windowTarget('b', 1_000_000)).toBeUndefined();
    expect(late.names).toEqual(['b', 'a']);
    expect(late.has('c')).toBe(false);
  });

  it('refuses values outside [0, 1] with BRAID_ERR_DATASET', () => {
    expect(() => LabelTrack.fromEvents('s', [label(0, 0, { speech: 2 })])).toThrowError(
      expect.objectContaining({ code: 'BRAID_ERR_DATASET', message: expect.stringContaining('"speech"') }),
    );
  });
});
