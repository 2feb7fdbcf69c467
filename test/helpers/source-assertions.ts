import { lastValueFrom, type Observable } from 'rxjs';
import { expect } from 'vitest';
import { SourceError } from '../../src/core/errors.js';

/** Polls until `check` holds (e.g. a child process is gone), failing after `ms`. */
export async function eventually(check: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The SourceError a source ends with; fails the test if it completes instead. */
export async function failure(source: Observable<unknown>): Promise<SourceError> {
  try {
    await lastValueFrom(source);
  } catch (error) {
    expect(error).toBeInstanceOf(SourceError);
    return error as SourceError;
  }
  throw new Error('expected the source to fail');
}
