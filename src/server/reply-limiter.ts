/** A token bucket: `perSecond` tokens a second, holding at most one second's worth. */
class Bucket {
  #tokens: number;
  #last: number;

  constructor(
    private readonly perSecond: number,
    now: number,
  ) {
    this.#tokens = perSecond;
    this.#last = now;
  }

  /** Refills for the time since the last call; true when a token is there (without taking it). */
  has(now: number): boolean {
    this.#tokens = Math.min(this.perSecond, this.#tokens + ((now - this.#last) / 1000) * this.perSecond);
    this.#last = now;
    return this.#tokens >= 1;
  }

  take(): void {
    this.#tokens -= 1;
  }
}

/**
 * Caps the error replies sent to one producer, so a flood of bad input cannot make the server flood back: each
 * reason has its own bucket (`perReason` a second), so a flood of one kind of error cannot hide a different one,
 * and all reasons together share a bucket of `total` a second. Replies held back are counted; the next reply sent
 * says how many.
 */
export class ReplyLimiter {
  readonly #reasons = new Map<string, Bucket>();
  readonly #total: Bucket;
  #suppressed = 0;
  suppressedTotal = 0;

  constructor(
    private readonly perReason = 5,
    total = 50,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#total = new Bucket(total, now());
  }

  /**
   * Whether a reply for `reason` may go now. When it may, `suppressed` is the number held back since the last one
   * sent (to put in that reply); when not, this reply is counted as held back.
   */
  take(reason: string): { send: true; suppressed: number } | { send: false } {
    const now = this.now();
    let bucket = this.#reasons.get(reason);
    if (bucket === undefined) {
      bucket = new Bucket(this.perReason, now);
      this.#reasons.set(reason, bucket);
    }
    // Both checked before either is taken, so a refused reply costs no token.
    const total = this.#total.has(now);
    if (!bucket.has(now) || !total) {
      this.#suppressed++;
      this.suppressedTotal++;
      return { send: false };
    }
    bucket.take();
    this.#total.take();
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return { send: true, suppressed };
  }
}
