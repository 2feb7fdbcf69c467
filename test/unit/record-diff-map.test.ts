import { describe, expect, it } from 'vitest';
import type { Prediction } from '../../src/core/window.js';
import { parseTopicMapping, streamIdFromTopic } from '../../src/record/channel-map.js';
import { diffPredictions } from '../../src/record/prediction-diff.js';

const p = (
  streamId: string,
  windowIndex: number,
  speech: number,
  extra: Partial<Prediction> = {},
): Prediction => ({
  streamId,
  windowIndex,
  windowStart: windowIndex * 10,
  windowEnd: windowIndex * 10 + 10,
  scores: { speech, motion: 0.5 },
  present: { audio: true, video: true, text: false, label: false },
  ...extra,
});

describe('diffPredictions', () => {
  it('finds two runs identical window by window, in any order', () => {
    const a = [p('x', 1, 0.1), p('x', 2, 0.2), p('y', 1, 0.3)];
    const d = diffPredictions(a, [...a].reverse());
    expect(d).toMatchObject({ identical: true, same: 3, differs: 0, onlyA: 0, onlyB: 0, differences: [] });
  });

  it('says where they differ: scores beyond the tolerance, presence, windows only one run has', () => {
    const a = [p('x', 1, 0.1), p('x', 2, 0.2), p('x', 3, 0.3), p('y', 1, 0.4)];
    const b = [
      p('x', 1, 0.1 + 1e-9),
      p('x', 2, 0.25),
      p('x', 4, 0.3),
      p('y', 1, 0.4, { present: { audio: true, video: false, text: false, label: false } }),
    ];
    const exact = diffPredictions(a, b);
    expect(exact.identical).toBe(false);
    // In (window end, stream) order.
    expect(exact.differences.map((d) => `${d.kind} ${d.streamId}/${d.windowIndex}`)).toEqual([
      'differs x/1',
      'differs y/1',
      'differs x/2',
      'only_a x/3',
      'only_b x/4',
    ]);
    const loose = diffPredictions(a, b, 1e-6);
    expect(loose.differences.map((d) => `${d.kind} ${d.streamId}/${d.windowIndex}`)).toEqual([
      'differs y/1',
      'differs x/2',
      'only_a x/3',
      'only_b x/4',
    ]);
    expect(loose.differences[0]?.present).toBe(true);
    expect(loose.differences[1]?.scores).toEqual({ speech: { a: 0.2, b: 0.25 } });
    const x = loose.streams.find((s) => s.streamId === 'x')!;
    expect(x).toMatchObject({ same: 1, differs: 1, onlyA: 1, onlyB: 1, first: { windowIndex: 2 } });
    expect(x.maxScoreDelta.speech).toBeCloseTo(0.05, 12);
  });

  it('refuses a file with two predictions of one window (two models) instead of comparing at random', () => {
    const a = [
      { ...p('x', 1, 0.1), model: 'm1' },
      { ...p('x', 1, 0.2), model: 'm2' },
    ];
    expect(() => diffPredictions(a, [])).toThrow(
      /A has two predictions for window 1 of stream "x" \(models m1 and m2\)/,
    );
  });
});

describe('topics of other tools', () => {
  it('stand for the stream named by their path without its last segment', () => {
    expect(streamIdFromTopic('/robot1/camera/image')).toBe('robot1/camera');
    expect(streamIdFromTopic('/cam1/audio')).toBe('cam1');
    expect(streamIdFromTopic('/camera')).toBe('camera');
    expect(streamIdFromTopic('camera')).toBe('camera');
  });

  it('map with TOPIC=STREAM:MODALITY, and a malformed mapping says what is expected', () => {
    expect(parseTopicMapping('/cam0=rig:video')).toEqual({
      topic: '/cam0',
      streamId: 'rig',
      modality: 'video',
    });
    expect(parseTopicMapping('/a=b/c=d:x:audio')).toEqual({
      topic: '/a=b/c',
      streamId: 'd:x',
      modality: 'audio',
    });
    for (const bad of ['/cam0', '/cam0=rig', '/cam0=:video', '=rig:video', '/cam0=rig:smell'])
      expect(() => parseTopicMapping(bad), bad).toThrow(/TOPIC=STREAM:MODALITY/);
  });
});
