/**
 * Caps the error replies sent to one producer (a token bucket: `perSecond`, burst of the same size), so a flood of
 * bad input cannot make the server flood back. Replies held back are counted; the next one sent says how many.
 */
export class ReplyLimiter {
  #tokens: number;
  #last: number;
  #suppressed = 0;
  suppressedTotal = 0;

  constructor(
    private readonly perSecond = 10,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = perSecond;
    this.#last = now();
  }

  /**
   * Whether a reply may go now. When it may, `suppressed` is the number held back since the last one sent (to put
   * in that reply); when not, this reply is counted as held back.
   */
  take(): { send: true; suppressed: number } | { send: false } {
    const now = this.now();
    this.#tokens = Math.min(this.perSecond, this.#tokens + ((now - this.#last) / 1000) * this.perSecond);
    this.#last = now;
    if (this.#tokens < 1) {
      this.#suppressed++;
      this.suppressedTotal++;
      return { send: false };
    }
    this.#tokens -= 1;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return { send: true, suppressed };
  }
}
