import { InvalidOptionError } from '../core/errors.js';
import type { Micros } from '../core/time.js';

/**
 * Checks a source's `origin` option (time of its first sample or frame): whole non-negative µs, or absent. Every
 * event time is derived from it, so a fraction or NaN here would put invalid times on every event.
 */
export function checkOrigin(origin: Micros | undefined, option = 'origin'): Micros | undefined {
  if (origin !== undefined && (!Number.isSafeInteger(origin) || origin < 0))
    throw new InvalidOptionError(option, `must be a non-negative integer of µs, got ${String(origin)}`);
  return origin;
}
