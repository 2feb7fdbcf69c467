import { readFileSync } from 'node:fs';
import { lastValueFrom, map, merge, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createAlignment } from '../../src/align/align-windows.js';
import type { AnySourceEvent } from '../../src/core/events.js';
import { ms } from '../../src/core/time.js';
import {
  createFeatureAggregator,
  DEFAULT_FEATURE_CONFIG,
  decodeCompressedFrames,
  featureLayout,
  fuseWindowFeatures,
} from '../../src/features/index.js';
import { audioFileSource } from '../../src/sources/audio-file.js';
import { DropCounter } from '../../src/sources/drop-counter.js';
import { videoSource } from '../../src/sources/video.js';
import { requireTool } from '../helpers/system-tools.js';

const hasFfmpeg = requireTool('ffmpeg');
const layout = featureLayout(DEFAULT_FEATURE_CONFIG);
const mask = (fused: Float32Array): number[] => [...fused.subarray(layout.total - 3)];

/**
 * The wiring the live pipeline uses: sources → decodeCompressedFrames → alignment with the feature aggregator →
 * fuseWindowFeatures, here on real files read by real ffmpeg processes (speech + street video, one stream).
 */
describe.skipIf(!hasFfmpeg)('sources → decode → align → features → fused vectors', () => {
  it('turns a speech clip and a video clip into one fused vector per 500 ms window', async () => {
    const { aggregator, stats } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const alignment = createAlignment<Float32Array>({
      size: ms(500),
      aggregator,
      expectedModalities: ['audio', 'video'],
    });
    const drops = new DropCounter();
    const audio$ = audioFileSource({
      streamId: 'clip',
      path: '/usr/share/asterisk/sounds/en/conf-onlyperson.wav',
    });
    const video$ = videoSource({
      streamId: 'clip',
      input: { kind: 'file', path: '/usr/share/doc/opencv-doc/examples/data/vtest.avi' },
    }).pipe(take(30)); // 3 s at 10 fps
    const windows = await lastValueFrom(
      merge<AnySourceEvent[]>(audio$, video$).pipe(
        decodeCompressedFrames<AnySourceEvent>({ drops }),
        alignment.align,
        map((window) => ({ window, fused: fuseWindowFeatures(window, DEFAULT_FEATURE_CONFIG) })),
        toArray(),
      ),
    );
    // 3.16 s of speech → windows 0..6; video covers the first six.
    expect(windows.map((w) => w.window.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    for (const { window, fused } of windows) {
      expect(fused).toHaveLength(layout.total);
      expect(fused.every(Number.isFinite)).toBe(true);
      expect(window.counts.video).toBe(window.index < 6 ? 5 : 0);
      expect(mask(fused)).toEqual(window.index < 6 ? [1, 1, 0] : [1, 0, 0]);
    }
    // People walk through every window: motion energy (first in the video block, no thumbnail) is never zero.
    for (const { fused } of windows.slice(0, 6)) expect(fused[layout.audio]).toBeGreaterThan(0);
    // The aligned audio features are the numpy reference's for the same 500 ms windows (the fixture was resampled by
    // the same ffmpeg command line; a few LSB of resampler difference elsewhere stay far inside 0.05).
    const reference = JSON.parse(
      readFileSync(new URL('../fixtures/features/audio-reference.json', import.meta.url), 'utf8'),
    ) as { windows: { mel: { mean: number[]; max: number[] }; rms: { mean: number[]; max: number[] } }[] };
    windows.forEach(({ fused }, i) => {
      const w = reference.windows[i]!;
      const expected = [...w.mel.mean, ...w.mel.max, ...w.rms.mean, ...w.rms.max];
      const worst = expected.reduce((m, v, j) => Math.max(m, Math.abs(fused[j]! - v)), 0);
      expect(worst).toBeLessThan(0.05);
    });
    // The clip ends in silence: the last window's mean RMS is far below the loudest one's.
    const rms = windows.map(({ fused }) => fused[80]!);
    expect(rms[6]).toBeLessThan(Math.max(...rms) / 20);
    expect(stats.total).toBe(0);
    expect(drops.total).toBe(0);
    expect(alignment.stats().windowsOut).toBe(7);
  });
});
