import type { FrameAggregate } from './config.js';

/**
 * Running per-dimension statistics over a window's frames. Sums are kept relative to each dimension's first value
 * (`shift`, the "assumed mean" method), so the std needs no second pass and loses no precision to cancellation.
 * {@link FrameAccumulator} keeps them in JavaScript; the log-mel SIMD kernel keeps the same ones in its memory.
 */
export interface FrameStatistics {
  readonly count: number;
  readonly shift: Float64Array;
  readonly sum: Float64Array;
  readonly sumSquares: Float64Array;
  readonly max: Float64Array;
  readonly min: Float64Array;
}

/**
 * Writes the aggregates of dimensions [from, from + dims) at `offset`, aggregate-major (all those dimensions' first
 * aggregate, then all their second...), and returns the offset after them. No frames: zeros.
 */
export function writeFrameAggregates(
  stats: FrameStatistics,
  from: number,
  dims: number,
  out: Float32Array,
  offset: number,
  aggregates: readonly FrameAggregate[],
): number {
  let o = offset;
  for (const aggregate of aggregates) {
    for (let d = from; d < from + dims; d++) out[o++] = aggregateValue(stats, aggregate, d);
  }
  return o;
}

function aggregateValue(stats: FrameStatistics, aggregate: FrameAggregate, d: number): number {
  const n = stats.count;
  if (n === 0) return 0;
  const meanOffset = (stats.sum[d] as number) / n;
  switch (aggregate) {
    case 'mean':
      return (stats.shift[d] as number) + meanOffset;
    case 'max':
      return stats.max[d] as number;
    case 'min':
      return stats.min[d] as number;
    case 'std':
      return Math.sqrt(Math.max(0, (stats.sumSquares[d] as number) / n - meanOffset * meanOffset));
  }
}

/** {@link FrameStatistics} gathered frame by frame in JavaScript, with no division per frame. */
export class FrameAccumulator implements FrameStatistics {
  readonly dims: number;
  #count = 0;
  readonly shift: Float64Array;
  readonly sum: Float64Array;
  readonly sumSquares: Float64Array;
  readonly max: Float64Array;
  readonly min: Float64Array;

  constructor(dims: number) {
    this.dims = dims;
    this.shift = new Float64Array(dims);
    this.sum = new Float64Array(dims);
    this.sumSquares = new Float64Array(dims);
    this.max = new Float64Array(dims);
    this.min = new Float64Array(dims);
    this.reset();
  }

  get count(): number {
    return this.#count;
  }

  reset(): void {
    this.#count = 0;
    this.sum.fill(0);
    this.sumSquares.fill(0);
    this.max.fill(Number.NEGATIVE_INFINITY);
    this.min.fill(Number.POSITIVE_INFINITY);
  }

  add(values: ArrayLike<number>): void {
    if (this.#count++ === 0) for (let d = 0; d < this.dims; d++) this.shift[d] = values[d] as number;
    const shift = this.shift;
    const sum = this.sum;
    const sumSquares = this.sumSquares;
    const max = this.max;
    const min = this.min;
    for (let d = 0; d < this.dims; d++) {
      const x = values[d] as number;
      const y = x - (shift[d] as number);
      sum[d] = (sum[d] as number) + y;
      sumSquares[d] = (sumSquares[d] as number) + y * y;
      if (x > (max[d] as number)) max[d] = x;
      if (x < (min[d] as number)) min[d] = x;
    }
  }

  /** Writes the aggregates of every dimension at `offset` and returns the offset after them. */
  write(out: Float32Array, offset: number, aggregates: readonly FrameAggregate[]): number {
    return writeFrameAggregates(this, 0, this.dims, out, offset, aggregates);
  }
}
