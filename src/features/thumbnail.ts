import type { RawPixelFormat } from '../core/events.js';

/**
 * Rec. 601 luma weights on the gamma-encoded values: the Y that ffmpeg's `format=gray` keeps from YUV video. The one
 * definition of grey in braid (the thumbnail here, decodeCompressedFrames' colour-to-grey).
 */
export const LUMA_R = 0.299;
export const LUMA_G = 0.587;
export const LUMA_B = 0.114;

/** For one axis: which source pixels each destination pixel covers and how much (weights sum to 1). */
interface AxisWeights {
  readonly start: Int32Array;
  readonly count: Int32Array;
  /** count[j] weights for destination j, stored from offset[j]. */
  readonly offset: Int32Array;
  readonly weights: Float64Array;
}

function axisWeights(source: number, target: number): AxisWeights {
  const scale = source / target;
  const start = new Int32Array(target);
  const count = new Int32Array(target);
  const offset = new Int32Array(target);
  const weights: number[] = [];
  for (let j = 0; j < target; j++) {
    const from = j * scale;
    const to = (j + 1) * scale;
    const first = Math.floor(from);
    const last = Math.min(source - 1, Math.ceil(to) - 1);
    start[j] = first;
    offset[j] = weights.length;
    // Every pixel in [floor(from), ceil(to)) overlaps [from, to) by a positive amount.
    for (let x = first; x <= last; x++) weights.push((Math.min(x + 1, to) - Math.max(x, from)) / scale);
    count[j] = weights.length - (offset[j] as number);
  }
  return { start, count, offset, weights: Float64Array.from(weights) };
}

/**
 * Area-average downscale of raw gray or rgb frames of one size to a small grayscale thumbnail in [0, 1]: each
 * thumbnail pixel is the mean luma of the source area it covers, with partial pixels weighted by their overlap, so
 * any size ratio works (not only whole factors). Plain typed-array loops with preallocated buffers: no image library.
 */
export class AreaDownscaler {
  readonly #srcWidth: number;
  readonly #srcHeight: number;
  readonly #dstWidth: number;
  readonly #x: AxisWeights;
  readonly #y: AxisWeights;
  /** Horizontal pass result: srcHeight rows of dstWidth luma values. */
  readonly #rows: Float64Array;

  constructor(srcWidth: number, srcHeight: number, dstWidth: number, dstHeight: number) {
    this.#srcWidth = srcWidth;
    this.#srcHeight = srcHeight;
    this.#dstWidth = dstWidth;
    this.#x = axisWeights(srcWidth, dstWidth);
    this.#y = axisWeights(srcHeight, dstHeight);
    this.#rows = new Float64Array(srcHeight * dstWidth);
  }

  /** Writes the thumbnail (dstWidth × dstHeight, row-major, 0..1) of `data` into `out`. */
  downscale(data: Uint8Array, format: RawPixelFormat, out: Float64Array): void {
    if (format === 'gray') this.#rowsGray(data);
    else this.#rowsRgb(data);
    const rows = this.#rows;
    const { start, count, offset, weights } = this.#y;
    const dstWidth = this.#dstWidth;
    for (let i = 0; i < start.length; i++) {
      const y0 = start[i] as number;
      const n = count[i] as number;
      const w0 = offset[i] as number;
      for (let j = 0; j < dstWidth; j++) {
        let sum = 0;
        for (let k = 0; k < n; k++)
          sum += (weights[w0 + k] as number) * (rows[(y0 + k) * dstWidth + j] as number);
        out[i * dstWidth + j] = sum / 255;
      }
    }
  }

  #rowsGray(data: Uint8Array): void {
    const { start, count, offset, weights } = this.#x;
    const rows = this.#rows;
    const width = this.#srcWidth;
    const dstWidth = this.#dstWidth;
    for (let y = 0; y < this.#srcHeight; y++) {
      const row = y * width;
      for (let j = 0; j < dstWidth; j++) {
        const x0 = row + (start[j] as number);
        const n = count[j] as number;
        const w0 = offset[j] as number;
        let sum = 0;
        for (let k = 0; k < n; k++) sum += (weights[w0 + k] as number) * (data[x0 + k] as number);
        rows[y * dstWidth + j] = sum;
      }
    }
  }

  #rowsRgb(data: Uint8Array): void {
    const { start, count, offset, weights } = this.#x;
    const rows = this.#rows;
    const width = this.#srcWidth;
    const dstWidth = this.#dstWidth;
    for (let y = 0; y < this.#srcHeight; y++) {
      const row = y * width;
      for (let j = 0; j < dstWidth; j++) {
        let p = 3 * (row + (start[j] as number));
        const n = count[j] as number;
        const w0 = offset[j] as number;
        let sum = 0;
        for (let k = 0; k < n; k++, p += 3) {
          const luma =
            LUMA_R * (data[p] as number) +
            LUMA_G * (data[p + 1] as number) +
            LUMA_B * (data[p + 2] as number);
          sum += (weights[w0 + k] as number) * luma;
        }
        rows[y * dstWidth + j] = sum;
      }
    }
  }
}
