/**
 * Motion descriptors of a window's consecutive thumbnails that do not depend on what the picture looks like: the
 * frame difference divided by the frames' contrast (a gain or an offset of the camera changes neither), and the
 * difference left once the best global shift is taken out (a camera panning over a still scene moves every pixel the
 * same way; a person moving does not), and the difference of 2×2 block means of the thumbnails (sensor noise is
 * independent from pixel to pixel and averages out there, a moving object does not: a still but noisy camera has a low
 * coarse-over-fine ratio, a moving scene one near 1). Computed on the thumbnail grid, per consecutive pair.
 */
import { meanOf, varianceAbout } from './moments.js';

export const VIDEO_DESCRIPTORS = ['contrast-motion', 'global-motion', 'coarse-motion'] as const;
export type VideoDescriptor = (typeof VIDEO_DESCRIPTORS)[number];

export const VIDEO_DESCRIPTOR_VALUES: Readonly<Record<VideoDescriptor, readonly string[]>> = {
  'contrast-motion': ['contrast motion mean', 'contrast motion max'],
  'global-motion': ['residual motion mean', 'residual motion max', 'global shift mean'],
  'coarse-motion': ['coarse motion mean', 'coarse over fine motion'],
};

/** Shifts searched for the global motion, in thumbnail pixels each way (±2 of 16 is ±8 pixels of a 64-wide frame). */
export const MAX_SHIFT = 2;
/** Keeps a flat (contrast-free) picture's noise from being divided by ~0; luma is 0..1. */
const CONTRAST_FLOOR = 0.01;

export function videoDescriptorSize(descriptors: readonly VideoDescriptor[] | undefined): number {
  let size = 0;
  for (const d of descriptors ?? []) size += VIDEO_DESCRIPTOR_VALUES[d].length;
  return size;
}

/** Running per-pair figures of one window; `reset` before each window, `addPair` per consecutive pair. */
export class MotionDescriptors {
  readonly #width: number;
  readonly #height: number;
  #pairs = 0;
  #contrastSum = 0;
  #contrastMax = 0;
  #residualSum = 0;
  #residualMax = 0;
  #shiftSum = 0;
  #coarseSum = 0;
  #fineSum = 0;
  readonly #coarsePrevious: Float64Array;
  readonly #coarseCurrent: Float64Array;

  constructor(width: number, height: number) {
    this.#width = width;
    this.#height = height;
    const coarse = Math.max(1, width >> 1) * Math.max(1, height >> 1);
    this.#coarsePrevious = new Float64Array(coarse);
    this.#coarseCurrent = new Float64Array(coarse);
  }

  reset(): void {
    this.#pairs = 0;
    this.#contrastSum = 0;
    this.#contrastMax = 0;
    this.#residualSum = 0;
    this.#residualMax = 0;
    this.#shiftSum = 0;
    this.#coarseSum = 0;
    this.#fineSum = 0;
  }

  /**
   * One consecutive pair of thumbnails (row-major, 0..1), `previous` first in time, with their mean absolute
   * difference (the featurizer's motion, `meanAbsDifference(current, previous)`: the unshifted candidate).
   */
  addPair(previous: Float64Array, current: Float64Array, still: number): void {
    const contrast =
      Math.sqrt((varianceAbout(previous, meanOf(previous)) + varianceAbout(current, meanOf(current))) / 2) +
      CONTRAST_FLOOR;
    let best = still;
    let bestShift = 0;
    for (let dy = -MAX_SHIFT; dy <= MAX_SHIFT; dy++) {
      for (let dx = -MAX_SHIFT; dx <= MAX_SHIFT; dx++) {
        if (dx === 0 && dy === 0) continue;
        const d = shiftedDifference(previous, current, this.#width, this.#height, dx, dy);
        // Strictly smaller only: ties keep the earlier candidate, so the result depends on the pixels alone.
        if (d < best) {
          best = d;
          bestShift = Math.hypot(dx, dy);
        }
      }
    }
    const contrastMotion = still / contrast;
    const residual = best / contrast;
    this.#pairs++;
    this.#contrastSum += contrastMotion;
    if (contrastMotion > this.#contrastMax) this.#contrastMax = contrastMotion;
    this.#residualSum += residual;
    if (residual > this.#residualMax) this.#residualMax = residual;
    this.#shiftSum += bestShift;
    blockMeans(previous, this.#width, this.#height, this.#coarsePrevious);
    blockMeans(current, this.#width, this.#height, this.#coarseCurrent);
    this.#coarseSum += meanAbsDifference(this.#coarsePrevious, this.#coarseCurrent) / contrast;
    this.#fineSum += contrastMotion;
  }

  /** Writes the listed descriptors at `offset` (zeros for a window with fewer than two frames); returns the end. */
  write(descriptors: readonly VideoDescriptor[], out: Float32Array, offset: number): number {
    const n = this.#pairs;
    let o = offset;
    for (const descriptor of descriptors) {
      switch (descriptor) {
        case 'contrast-motion':
          out[o++] = n > 0 ? this.#contrastSum / n : 0;
          out[o++] = this.#contrastMax;
          break;
        case 'global-motion':
          out[o++] = n > 0 ? this.#residualSum / n : 0;
          out[o++] = this.#residualMax;
          out[o++] = n > 0 ? this.#shiftSum / n : 0;
          break;
        case 'coarse-motion':
          out[o++] = n > 0 ? this.#coarseSum / n : 0;
          out[o++] = this.#fineSum > 0 ? this.#coarseSum / this.#fineSum : 0;
          break;
      }
    }
    return o;
  }
}

/**
 * Means of 2×2 blocks (a trailing odd row or column is left out; a thumbnail one pixel wide or high keeps that
 * axis), row-major into `out`.
 */
function blockMeans(values: Float64Array, width: number, height: number, out: Float64Array): void {
  const bx = width > 1 ? 2 : 1;
  const by = height > 1 ? 2 : 1;
  const w = Math.max(1, width >> 1);
  const h = Math.max(1, height >> 1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let sum = 0;
      for (let dy = 0; dy < by; dy++)
        for (let dx = 0; dx < bx; dx++) sum += values[(y * by + dy) * width + x * bx + dx] as number;
      out[y * w + x] = sum / (bx * by);
    }
  }
}

/** Mean |a − b| over all values, in index order. */
export function meanAbsDifference(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] as number) - (b[i] as number));
  return sum / a.length;
}

/** Mean |current(x + dx, y + dy) − previous(x, y)| over the pixels where both exist. */
function shiftedDifference(
  previous: Float64Array,
  current: Float64Array,
  width: number,
  height: number,
  dx: number,
  dy: number,
): number {
  const x0 = Math.max(0, -dx);
  const x1 = Math.min(width, width - dx);
  const y0 = Math.max(0, -dy);
  const y1 = Math.min(height, height - dy);
  let sum = 0;
  for (let y = y0; y < y1; y++) {
    const p = y * width;
    const c = (y + dy) * width + dx;
    for (let x = x0; x < x1; x++) sum += Math.abs((current[c + x] as number) - (previous[p + x] as number));
  }
  const count = (x1 - x0) * (y1 - y0);
  // No overlap (a thumbnail narrower than the shift): never the best candidate.
  return count > 0 ? sum / count : Number.POSITIVE_INFINITY;
}
