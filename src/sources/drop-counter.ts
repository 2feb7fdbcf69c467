import type { BadFrameError } from '../core/errors.js';

/**
 * Counts what a stage dropped, by stable reason (`unsupported_sample_rate`, `corrupt_image`, `bad_json`...), so every
 * rejection is visible to metrics and tests. Keeps the last error of each reason for diagnostics; the stream goes on.
 */
export class DropCounter {
  readonly #counts = new Map<string, number>();
  readonly #last = new Map<string, BadFrameError>();
  #total = 0;

  record(error: BadFrameError): void {
    this.#counts.set(error.reason, (this.#counts.get(error.reason) ?? 0) + 1);
    this.#last.set(error.reason, error);
    this.#total++;
  }

  count(reason: string): number {
    return this.#counts.get(reason) ?? 0;
  }

  get total(): number {
    return this.#total;
  }

  lastError(reason: string): BadFrameError | undefined {
    return this.#last.get(reason);
  }

  /** Counts by reason, as a plain object (for metrics and JSON). */
  snapshot(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.#counts);
  }
}
