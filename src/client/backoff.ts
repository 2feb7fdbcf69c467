/** How a client waits between reconnects. */
export interface BackoffOptions {
  /** First delay (ms). Default 250. */
  readonly initialMs?: number;
  /** Longest delay (ms). Default 10 s. */
  readonly maxMs?: number;
  /** Attempts before giving up (default: never). */
  readonly maxAttempts?: number;
}

/**
 * Exponential backoff with full jitter (AWS's "full jitter"): attempt n waits a uniform random time in
 * [0, min(max, initial × 2^n)], so a server restart is not met by every client at the same instant.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? 250;
  const max = options.maxMs ?? 10_000;
  return Math.round(random() * Math.min(max, initial * 2 ** attempt));
}
