import type { BadFrameError } from '../core/errors.js';
import { type RefusalListener, refusalOf } from '../core/refusal.js';

/**
 * Counts what a stage dropped, by stable reason (`unsupported_sample_rate`, `corrupt_image`, `bad_json`...), so every
 * rejection is visible to metrics and tests. Keeps the last error of each reason for diagnostics; the stream goes on.
 * When the dropped event is known, a listener hears of it with the event's identity, so the sender can be told.
 */
export class DropCounter {
  readonly #counts = new Map<string, number>();
  readonly #last = new Map<string, BadFrameError>();
  readonly #listener: RefusalListener | undefined;
  #total = 0;

  constructor(listener?: RefusalListener) {
    this.#listener = listener;
  }

  /** Counts one drop; `event` is what was dropped (any event-like value), for the listener. */
  record(error: BadFrameError, event?: unknown): void {
    this.#counts.set(error.reason, (this.#counts.get(error.reason) ?? 0) + 1);
    this.#last.set(error.reason, error);
    this.#total++;
    if (this.#listener === undefined || event === undefined) return;
    const refusal = refusalOf(event, error.reason, error.message);
    if (refusal) this.#listener(refusal);
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
