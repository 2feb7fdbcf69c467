import { BraidError } from '../core/errors.js';

/** A recording could not be written or read: not an MCAP file, a range outside it, a failed disk write... */
export class RecordingError extends BraidError {
  override readonly name = 'RecordingError';
  constructor(
    readonly path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('BRAID_ERR_RECORDING', `${path}: ${message}`, options);
  }
}

/**
 * A write refused because too many are already queued (the disk is slower than the events): counted in
 * `stats.rejected.write_backlog`; the recording goes on. Unlike a {@link RecordingError} the file is fine.
 */
export class WriteBacklogError extends BraidError {
  override readonly name = 'WriteBacklogError';
  readonly reason = 'write_backlog';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super('BRAID_ERR_RECORDING', `${path}: ${message}`);
  }
}

/** Something in a recording was skipped or cut short; reading went on. `code` is a stable key for counters. */
export interface RecordingWarning {
  readonly code: 'truncated' | 'no_index' | 'unknown_channel' | 'bad_message';
  readonly message: string;
  /** MCAP channel id the warning is about, when it is about one channel. */
  readonly channelId?: number;
}

export type WarningListener = (warning: RecordingWarning) => void;

export const causeText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
