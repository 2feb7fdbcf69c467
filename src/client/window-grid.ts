// A stream's window grid as its `ready` gives it, for a producer that ends its audio frames where windows end: a
// window closes when its last sample has arrived, so a frame that runs past a window's end holds that window back
// until the frame is captured whole (up to a frame's length: 20 ms for the demo page).

/** Windows are [origin + k·hop, origin + k·hop + size), µs of capture time (`ready.windowing`). */
export interface WindowGrid {
  readonly origin: number;
  readonly size: number;
  readonly hop: number;
}

/** The first window end strictly after `time` (µs). */
export function windowEndAfter(grid: WindowGrid, time: number): number {
  const k = Math.floor((time - grid.origin - grid.size) / grid.hop) + 1;
  return grid.origin + grid.size + k * grid.hop;
}

/**
 * The index of the first sample captured at or after `time`, for audio whose sample 0 was captured at `start` (µs,
 * whole numbers). A frame cut before it ends, as the server stamps it (start + ⌊samples × 10⁶ / rate⌋), at or after
 * `time`, and holds no sample of `time` or later.
 */
export function sampleIndexAt(start: number, time: number, sampleRate: number): number {
  return Math.ceil(((time - start) * sampleRate) / 1_000_000);
}

/**
 * How many samples the audio frame starting at `time` (µs, as the producer stamps it) should hold: up to the next
 * window end when that comes within 1.5 frames of `frameSamples`, else `frameSamples`. Frames stay within 0.5–1.5
 * of their usual length (after the first cut), and every window end falls on the end of one.
 */
export function frameSamplesToWindowEnd(
  grid: WindowGrid,
  time: number,
  sampleRate: number,
  frameSamples: number,
): number {
  const toEnd = sampleIndexAt(time, windowEndAfter(grid, time), sampleRate);
  return toEnd <= Math.ceil(frameSamples * 1.5) ? toEnd : frameSamples;
}
