import { InvalidOptionError } from './errors.js';

/**
 * Pull-based flow control between a producer that can wait — a replay reading a file, a dataset built from one — and
 * the stages behind it that hold items for a while (images being decoded, windows queued for the model). Each such
 * stage draws a {@link CreditLane} with a number of credits: it spends one for every item it takes into its buffers
 * and returns it when the item leaves them. Before each item the producer asks {@link FlowCredit.ready}: it goes on
 * while every lane has credit, waits when one runs out, and resumes once every lane has half its credits back (so it
 * wakes per batch, not per item). Nothing behind the producer ever holds more than its lane's credits (plus what one
 * item can release at once), so no stage needs to drop for want of room, and how fast the producer could go never
 * changes what comes out. Live sources cannot wait: they pass no FlowCredit and the stages keep their caps and
 * counted drops.
 */
export class FlowCredit {
  readonly #lanes: CreditLane[] = [];
  #wake: { promise: Promise<void>; resolve: () => void } | undefined;

  /** A lane of `credits` for one stage; `name` is for {@link snapshot}. */
  lane(name: string, credits: number): CreditLane {
    if (!Number.isSafeInteger(credits) || credits < 1)
      throw new InvalidOptionError('credits', `must be a positive integer, got ${credits}`);
    const lane = new CreditLane(name, credits, () => this.#changed());
    this.#lanes.push(lane);
    return lane;
  }

  /** True while some lane has no credit left: the producer must wait. */
  get exhausted(): boolean {
    return this.#lanes.some((l) => l.inUse >= l.credits);
  }

  /**
   * Producer side, before each item: undefined when it may go on now, else a promise that resolves once every lane
   * has at least half its credits free again.
   */
  ready(): Promise<void> | undefined {
    if (!this.exhausted) return undefined;
    if (!this.#wake) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#wake = { promise, resolve };
    }
    return this.#wake.promise;
  }

  /** Credits in use per lane, and the most ever in use: for tests and diagnostics. */
  snapshot(): Record<string, { credits: number; inUse: number; peak: number }> {
    return Object.fromEntries(
      this.#lanes.map((l) => [l.name, { credits: l.credits, inUse: l.inUse, peak: l.peak }]),
    );
  }

  #changed(): void {
    if (!this.#wake) return;
    if (this.#lanes.some((l) => l.inUse > l.credits / 2)) return;
    const { resolve } = this.#wake;
    this.#wake = undefined;
    resolve();
  }
}

/** One stage's credits: `take` when items enter its buffers, `give` when they leave (emitted or dropped). */
export class CreditLane {
  #inUse = 0;
  #peak = 0;

  constructor(
    readonly name: string,
    readonly credits: number,
    private readonly changed: () => void,
  ) {}

  get inUse(): number {
    return this.#inUse;
  }

  /** The most credits ever in use at once. */
  get peak(): number {
    return this.#peak;
  }

  take(n = 1): void {
    this.#inUse += n;
    if (this.#inUse > this.#peak) this.#peak = this.#inUse;
  }

  give(n = 1): void {
    if (n > this.#inUse)
      throw new RangeError(`lane ${this.name}: ${n} credits given back, only ${this.#inUse} in use`);
    this.#inUse -= n;
    this.changed();
  }
}
