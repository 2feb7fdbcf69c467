import { lastValueFrom, type Observable } from 'rxjs';
import { expect } from 'vitest';
import { SourceError } from '../../src/core/errors.js';

/**
 * Polls until `check` holds (a child process is gone, a server has seen a close), failing after `ms`: waiting on the
 * condition itself, for state that announces no event to wait on.
 */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
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
