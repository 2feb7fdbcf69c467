import type { FrameAggregate } from './config.js';

/**
 * Running per-dimension statistics over a window's frames (mean and std by Welford's method, so one pass and no
 * cancellation), written out aggregate-major: all dimensions' first aggregate, then all dimensions' second...
 */
export class FrameAccumulator {
  readonly dims: number;
  #count = 0;
  readonly #mean: Float64Array;
  readonly #m2: Float64Array;
  readonly #max: Float64Array;
  readonly #min: Float64Array;

  constructor(dims: number) {
    this.dims = dims;
    this.#mean = new Float64Array(dims);
    this.#m2 = new Float64Array(dims);
    this.#max = new Float64Array(dims);
    this.#min = new Float64Array(dims);
    this.reset();
  }

  get count(): number {
    return this.#count;
  }

  reset(): void {
    this.#count = 0;
    this.#mean.fill(0);
    this.#m2.fill(0);
    this.#max.fill(Number.NEGATIVE_INFINITY);
    this.#min.fill(Number.POSITIVE_INFINITY);
  }

  add(values: ArrayLike<number>): void {
    const n = ++this.#count;
    for (let d = 0; d < this.dims; d++) this.#update(d, values[d] as number, n);
  }

  /** Adds a frame of a one-dimensional feature (RMS) without wrapping it in an array. */
  addScalar(value: number): void {
    this.#update(0, value, ++this.#count);
  }

  #update(d: number, x: number, n: number): void {
    const mean = this.#mean[d] as number;
    const delta = x - mean;
    const next = mean + delta / n;
    this.#mean[d] = next;
    this.#m2[d] = (this.#m2[d] as number) + delta * (x - next);
    if (x > (this.#max[d] as number)) this.#max[d] = x;
    if (x < (this.#min[d] as number)) this.#min[d] = x;
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
    if (this.#count === 0) return 0;
    switch (aggregate) {
      case 'mean':
        return this.#mean[d] as number;
      case 'max':
        return this.#max[d] as number;
      case 'min':
        return this.#min[d] as number;
      case 'std':
        return Math.sqrt((this.#m2[d] as number) / this.#count);
    }
  }
}
