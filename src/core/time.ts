/**
 * Time in braid: one unit everywhere — integer **microseconds**.
 *
 * Every event carries its originating (capture) time in microseconds since the Unix epoch (live sources) or since an
 * arbitrary origin chosen by the source (synthetic streams, tests). Integer microseconds stay exact in a JS number
 * for 285 years past the epoch (2^53 µs), so arithmetic on them never rounds; MCAP's nanoseconds are µs × 1000.
 * Audio time is derived from sample counts, never from arrival: see {@link audioFrameTime}.
 */
export type Micros = number;

export const MICROS_PER_MS = 1_000;
export const MICROS_PER_SECOND = 1_000_000;

/** Largest originating time accepted: year 2200 in µs since the epoch. Anything later is treated as absurd. */
export const MAX_TIME_MICROS: Micros = 7_258_118_400_000_000;

export const ms = (value: number): Micros => Math.round(value * MICROS_PER_MS);
export const seconds = (value: number): Micros => Math.round(value * MICROS_PER_SECOND);
export const toSeconds = (t: Micros): number => t / MICROS_PER_SECOND;

/**
 * Originating time of the first sample of an audio frame: the stream's start time plus the samples that came before
 * it. Floor keeps frames at integer µs and is exact whenever the rate divides 1e6 × samples (10 ms at 16 kHz).
 */
export function audioFrameTime(streamStart: Micros, samplesBefore: number, sampleRate: number): Micros {
  return streamStart + Math.floor((samplesBefore * MICROS_PER_SECOND) / sampleRate);
}

/** Current wall-clock time in µs since the epoch; the only place braid reads the clock for stamping. */
export function wallClockMicros(): Micros {
  return Math.round((performance.timeOrigin + performance.now()) * MICROS_PER_MS);
}

/**
 * Parses a duration such as `30s`, `250ms`, `1.5m`, `2h` or a bare number of seconds into µs.
 * Throws a TypeError naming the text when it is not a duration, or not a whole number of µs.
 */
export function parseDuration(text: string): Micros {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$/.exec(text);
  if (!match) throw new TypeError(`not a duration: "${text}" (expected e.g. 30s, 250ms, 1.5m)`);
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor: Record<string, number> = {
    us: 1,
    µs: 1,
    ms: MICROS_PER_MS,
    s: MICROS_PER_SECOND,
    m: 60 * MICROS_PER_SECOND,
    h: 3600 * MICROS_PER_SECOND,
  };
  const micros = value * (factor[unit] as number);
  const whole = Math.round(micros);
  // Times are whole µs: a finer duration would be rounded silently (1.5us read as 2 µs). The slack absorbs binary
  // fractions such as 1.1 × 10^6 = 1100000.0000000002.
  if (Math.abs(micros - whole) > 1e-9 + 8 * Number.EPSILON * micros)
    throw new TypeError(`not a whole number of µs: "${text}" (braid times are whole microseconds)`);
  if (!Number.isSafeInteger(whole)) throw new TypeError(`duration too long: "${text}"`);
  return whole;
}
