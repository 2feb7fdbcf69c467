import { describe, expect, it } from 'vitest';
import { AUDIO_DESCRIPTOR_VALUES, writeAudioDescriptors } from '../../src/features/index.js';

// Frame rows of a window whose bands are all `level` (ln mel power) frame by frame.
const rowsOf = (levels: readonly number[], bands = 4) => {
  const stride = bands + 1;
  const rows = new Float64Array(levels.length * stride);
  for (const [f, level] of levels.entries()) rows.fill(level, f * stride, f * stride + bands);
  return { rows, stride, frames: levels.length, bands };
};
const pcmOf = (frames: number) => ({
  pcm: new Int16Array(frames * 160 + 240),
  length: frames * 160 + 240,
  frameLength: 400,
  hopLength: 160,
});
const segments = (levels: readonly number[]): number[] => {
  const out = new Float32Array(AUDIO_DESCRIPTOR_VALUES.segments.length);
  const end = writeAudioDescriptors(rowsOf(levels), pcmOf(levels.length), ['segments'], 16_000, out, 0);
  expect(end).toBe(12);
  return [...out];
};

describe('segments descriptor', () => {
  it('says where in the window a sound starts: only the last quarter of a 48-frame onset window is loud', () => {
    const onset = segments([...Array(40).fill(-12), ...Array(8).fill(-2)]);
    const energy = [0, 3, 6, 9].map((k) => onset[k] as number);
    // ln energy of 4 bands of ln power l is l + ln 4; quarters 1–3 are silent, the last is 4 quiet frames and 8 loud.
    expect(energy.slice(0, 3)).toEqual(Array(3).fill(Math.fround(-12 + Math.log(4))));
    expect(energy[3]).toBeCloseTo((4 * -12 + 8 * -2) / 12 + Math.log(4), 5);
    // Flat spectra: flatness 0 and centroid in the middle of the bands, every quarter.
    expect([1, 4, 7, 10].map((k) => onset[k])).toEqual([0, 0, 0, 0]);
    expect([2, 5, 8, 11].map((k) => onset[k])).toEqual(Array(4).fill(0.5));
  });

  it('shares frames between segments in a window shorter than four frames, and gives zeros for none', () => {
    const one = segments([-3]);
    for (let k = 1; k < 4; k++) expect(one.slice(3 * k, 3 * k + 3)).toEqual(one.slice(0, 3));
    const two = segments([-10, -1]);
    expect(two[0]).toBe(two[3]);
    expect(two[6]).toBe(two[9]);
    expect(two[9] as number).toBeGreaterThan(two[0] as number);
    expect(segments([])).toEqual(Array(12).fill(0));
  });
});
