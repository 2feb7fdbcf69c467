import { describe, expect, it } from 'vitest';
import type { SourceEvent } from '../../src/core/events.js';
import { resolveEventSettings } from '../../src/events/settings.js';
import type { Sequence } from '../../src/train/dataset.js';
import { evaluateEvents, matchOnsets } from '../../src/train/event-metrics.js';
import { LabelTrack } from '../../src/train/labels.js';

const label = (time: number, seq: number, value: number): SourceEvent<'label'> => ({
  streamId: 's',
  modality: 'label',
  time,
  seq,
  payload: { labels: { speech: value } },
});

describe('train: event-level figures', () => {
  it('finds the true onsets of a label track, counting one in force at the start', () => {
    const track = LabelTrack.fromEvents('s', [
      label(0, 0, 1),
      label(1000, 1, 0),
      label(2000, 2, 1),
      label(2500, 3, 1),
      label(4000, 4, 0),
      label(6000, 5, 1),
    ]);
    expect(track.onsets('speech', 0, 10_000)).toEqual([0, 2000, 6000]);
    expect(track.onsets('speech', 500, 5000)).toEqual([500, 2000]);
    expect(track.onsets('speech', 3000, 6000)).toEqual([3000]);
    expect(track.onsets('motion', 0, 10_000)).toEqual([]);
  });

  it('matches onsets and events one to one within the tolerance, in time order', () => {
    expect(matchOnsets([1000, 5000], [900, 1200, 7000], 500)).toEqual([-100]);
    // One event cannot find two onsets; the second onset takes the next one in reach.
    expect(matchOnsets([1000, 1300], [1100, 1700], 500)).toEqual([100, 400]);
    expect(matchOnsets([1000], [], 500)).toEqual([]);
    expect(matchOnsets([], [1000], 500)).toEqual([]);
  });

  it('runs the live state machine over each sequence and counts matched, missed and false onsets', () => {
    const W = 500_000;
    const windows = Array.from({ length: 8 }, (_, i) => ({ index: i, start: i * W, end: (i + 1) * W }));
    // Scores on in windows 2-3 and 6 (the default 0.6 / 0.4); the labels turn on at 1.1 s and 8 s.
    const scores = Float32Array.from([0.1, 0.2, 0.9, 0.8, 0.1, 0.1, 0.95, 0.3]);
    const sequence: Sequence = {
      session: 'a.mcap',
      streamId: 's',
      windows,
      x: new Float32Array(0),
      y: new Float32Array(8),
      onsets: { speech: [1_100_000, 8_000_000] },
    };
    const report = evaluateEvents(
      [sequence],
      [scores],
      ['speech'],
      resolveEventSettings(['speech']),
      1_000_000,
    );
    // Events on at 1.0 s (window 2's boundary) and 3.0 s; the first finds the onset at 1.1 s, 100 ms early.
    expect(report).toEqual({
      toleranceMs: 1000,
      labels: {
        speech: {
          onsets: 2,
          predicted: 2,
          matched: 1,
          missed: 1,
          false: 1,
          meanAbsErrorMs: 100,
          meanErrorMs: -100,
        },
      },
    });
  });
});
