import type { AudioFeatureConfig } from './config.js';

export const hzToMelHtk = (hz: number): number => 2595 * Math.log10(1 + hz / 700);
export const melToHzHtk = (mel: number): number => 700 * (10 ** (mel / 2595) - 1);

/**
 * One triangular mel band stored sparsely: only the FFT bins [firstBin, firstBin + weights.length) where its weight
 * is non-zero, so applying the bank costs about two multiplies per bin instead of bands × bins.
 */
export interface MelBand {
  readonly firstBin: number;
  readonly weights: Float64Array;
}

/**
 * HTK-scale triangular filters on the exact FFT bin frequencies (k · rate / fftSize), with peak 1 and no area
 * normalisation — the same matrix as librosa.filters.mel(htk=True, norm=None). Bands whose triangle falls between
 * two bins keep zero weights (an empty band), as librosa does.
 */
export function melFilterbank(config: AudioFeatureConfig): MelBand[] {
  const { melBands, fMin, fMax, fftSize, sampleRate } = config;
  const bins = fftSize / 2 + 1;
  const melMin = hzToMelHtk(fMin);
  const melMax = hzToMelHtk(fMax);
  const edges = Array.from({ length: melBands + 2 }, (_, i) =>
    melToHzHtk(melMin + ((melMax - melMin) * i) / (melBands + 1)),
  );
  const bands: MelBand[] = [];
  for (let m = 0; m < melBands; m++) {
    const lower = edges[m] as number;
    const centre = edges[m + 1] as number;
    const upper = edges[m + 2] as number;
    const dense = new Float64Array(bins);
    let first = -1;
    let last = -1;
    for (let k = 0; k < bins; k++) {
      const f = (k * sampleRate) / fftSize;
      const w = Math.max(0, Math.min((f - lower) / (centre - lower), (upper - f) / (upper - centre)));
      dense[k] = w;
      if (w > 0) {
        if (first < 0) first = k;
        last = k;
      }
    }
    bands.push(
      first < 0
        ? { firstBin: 0, weights: new Float64Array(0) }
        : { firstBin: first, weights: dense.slice(first, last + 1) },
    );
  }
  return bands;
}

/** The mel bands' weights in one array (band m's from weightStart[m] to weightStart[m + 1]): no object per band. */
export interface FlatMelBank {
  readonly firstBin: Int32Array;
  readonly weightStart: Int32Array;
  readonly weights: Float64Array;
}

export function flatMelFilterbank(config: AudioFeatureConfig): FlatMelBank {
  const bands = melFilterbank(config);
  const firstBin = Int32Array.from(bands, (b) => b.firstBin);
  const weightStart = new Int32Array(bands.length + 1);
  bands.forEach((b, m) => {
    weightStart[m + 1] = (weightStart[m] as number) + b.weights.length;
  });
  const weights = new Float64Array(weightStart[bands.length] as number);
  bands.forEach((b, m) => {
    weights.set(b.weights, weightStart[m] as number);
  });
  return { firstBin, weightStart, weights };
}
