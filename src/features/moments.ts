/**
 * Mean and (population) variance of a series, for the audio and video descriptors; plain numbers, no tuple, as these
 * run per window on every stream. Indexed loops: `for…of` over a typed array allocated an iterator result per element
 * on this path (bench/alloc.ts put the video descriptors' variance alone at 61 % of a shard's allocation), feeding its
 * garbage collections. An empty series gives NaN.
 */
export function meanOf(values: Float64Array): number {
  const n = values.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i] as number;
  return sum / n;
}

/** Variance about `centre`, the series' mean. */
export function varianceAbout(values: Float64Array, centre: number): number {
  const n = values.length;
  let squares = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) - centre;
    squares += d * d;
  }
  return squares / n;
}
