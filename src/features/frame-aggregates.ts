import type { FrameAggregate } from './config.js';

/**
 * Running per-dimension statistics over a window's frames, written out aggregate-major: all dimensions' first
 * aggregate, then all dimensions' second... Sums are kept relative to each dimension's first value (the "assumed
 * mean" method), so the std needs no second pass and loses no precision to cancellation, with no division per frame.
 */
export class FrameAccumulator {
  readonly dims: number;
  #count = 0;
  readonly #shift: Float64Array;
  readonly #sum: Float64Array;
  readonly #sumSquares: Float64Array;
  readonly #max: Float64Array;
  readonly #min: Float64Array;

  constructor(dims: number) {
    this.dims = dims;
    this.#shift = new Float64Array(dims);
    this.#sum = new Float64Array(dims);
    this.#sumSquares = new Float64Array(dims);
    this.#max = new Float64Array(dims);
    this.#min = new Float64Array(dims);
    this.reset();
  }

  get count(): number {
    return this.#count;
  }

  reset(): void {
    this.#count = 0;
    this.#sum.fill(0);
    this.#sumSquares.fill(0);
    this.#max.fill(Number.NEGATIVE_INFINITY);
    this.#min.fill(Number.POSITIVE_INFINITY);
  }

  add(values: ArrayLike<number>): void {
    if (this.#count++ === 0) for (let d = 0; d < this.dims; d++) this.#shift[d] = values[d] as number;
    const shift = this.#shift;
    const sum = this.#sum;
    const sumSquares = this.#sumSquares;
    const max = this.#max;
    const min = this.#min;
    for (let d = 0; d < this.dims; d++) {
      const x = values[d] as number;
      const y = x - (shift[d] as number);
      sum[d] = (sum[d] as number) + y;
      sumSquares[d] = (sumSquares[d] as number) + y * y;
      if (x > (max[d] as number)) max[d] = x;
      if (x < (min[d] as number)) min[d] = x;
    }
  }

  /** Adds a frame of a one-dimensional feature (RMS) without wrapping it in an array. */
  addScalar(value: number): void {
    if (this.#count++ === 0) this.#shift[0] = value;
    const y = value - (this.#shift[0] as number);
    this.#sum[0] = (this.#sum[0] as number) + y;
    this.#sumSquares[0] = (this.#sumSquares[0] as number) + y * y;
    if (value > (this.#max[0] as number)) this.#max[0] = value;
    if (value < (this.#min[0] as number)) this.#min[0] = value;
  }

  /** Writes the aggregates at `offset` and returns the offset after them. */
  write(out: Float32Array, offset: number, aggregates: readonly FrameAggregate[]): number {
    let o = offset;
    for (const aggregate of aggregates) {
      for (let d = 0; d < this.dims; d++) out[o++] = this.#value(aggregate, d);
    }
    return o;
  }

  #value(aggregate: FrameAggregate, d: number): number {
    const n = this.#count;
    if (n === 0) return 0;
    const meanOffset = (this.#sum[d] as number) / n;
    switch (aggregate) {
      case 'mean':
        return (this.#shift[d] as number) + meanOffset;
      case 'max':
        return this.#max[d] as number;
      case 'min':
        return this.#min[d] as number;
      case 'std':
        return Math.sqrt(Math.max(0, (this.#sumSquares[d] as number) / n - meanOffset * meanOffset));
    }
  }
}
