import type { ModelConfig } from '../model/config.js';
import type { Sequence } from './dataset.js';

/** Below this a spread counts as none (a mask that is always 1, a colour channel of gray video). */
const NO_SPREAD = 1e-6;
/** IQR of a standard normal: IQR / 1.349 estimates σ for normal data. */
const NORMAL_IQR = 1.349;

export type NormalizationKind = 'robust' | 'standard';

/**
 * Centre and scale of every fused input dimension over the given (training) windows, for the model's
 * x' = (x − mean) / std. `robust` (the default) centres on the median and scales by IQR / 1.349, falling back to the
 * standard deviation where the IQR is 0 (sparse dimensions such as hashed text): braid's features are heavy-tailed
 * (a scene cut makes a motion value 100× the usual one), and a standard deviation inflated by such outliers would
 * squeeze the ordinary values that carry the signal into a sliver of the input range. `standard` is mean and
 * standard deviation. A dimension without spread gets scale 1, so it maps to ~0 and stays finite.
 */
export function computeNormalization(
  sequences: readonly Sequence[],
  inputWidth: number,
  kind: NormalizationKind = 'robust',
): ModelConfig['normalization'] {
  const rows = sequences.reduce((n, s) => n + s.windows.length, 0);
  if (rows === 0) throw new RangeError('normalization needs at least one window');
  const mean: number[] = [];
  const std: number[] = [];
  const column = new Float64Array(rows);
  for (let i = 0; i < inputWidth; i++) {
    let r = 0;
    for (const s of sequences)
      for (let t = 0; t < s.windows.length; t++) column[r++] = s.x[t * inputWidth + i] as number;
    let sum = 0;
    for (const v of column) sum += v;
    const average = sum / rows;
    let squares = 0;
    for (const v of column) squares += (v - average) ** 2;
    const sd = Math.sqrt(squares / rows);
    if (kind === 'standard') {
      mean.push(average);
      std.push(sd > NO_SPREAD ? sd : 1);
      continue;
    }
    column.sort();
    const iqr = (quantile(column, 0.75) - quantile(column, 0.25)) / NORMAL_IQR;
    mean.push(quantile(column, 0.5));
    std.push(iqr > NO_SPREAD ? iqr : sd > NO_SPREAD ? sd : 1);
  }
  return { mean, std };
}

/** Linear interpolation between order statistics of sorted values (numpy's default). */
function quantile(sorted: Float64Array, q: number): number {
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (at - lo);
}
