/**
 * Typed errors with stable string codes (in the manner of ws's `WS_ERR_*`). Codes are listed in docs/errors.md;
 * tests and clients match on `code`, never on the message text.
 */
export type BraidErrorCode =
  | 'BRAID_ERR_INVALID_EVENT'
  | 'BRAID_ERR_INVALID_OPTION'
  | 'BRAID_ERR_LATE_EVENT'
  | 'BRAID_ERR_NON_MONOTONIC'
  | 'BRAID_ERR_BAD_FRAME'
  | 'BRAID_ERR_SOURCE'
  | 'BRAID_ERR_MODEL'
  | 'BRAID_ERR_FEATURE_MISMATCH'
  | 'BRAID_ERR_RECORDING'
  | 'BRAID_ERR_PROTOCOL'
  | 'BRAID_ERR_DATASET'
  | 'BRAID_ERR_INTEROP'
  | 'BRAID_ERR_CLUSTER';

export class BraidError extends Error {
  override readonly name: string = 'BraidError';
  constructor(
    readonly code: BraidErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A source event failed validation; `field` names the offending field (e.g. `time`, `streamId`). */
export class InvalidEventError extends BraidError {
  override readonly name = 'InvalidEventError';
  constructor(
    readonly field: string,
    readonly reason: string,
    message: string,
  ) {
    super('BRAID_ERR_INVALID_EVENT', message);
  }
}

/** An option passed to an operator, server or command is invalid; `option` names it. */
export class InvalidOptionError extends BraidError {
  override readonly name = 'InvalidOptionError';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super('BRAID_ERR_INVALID_OPTION', `option "${option}": ${message}`);
  }
}

/** A source (microphone, camera, file, child process) failed; the message names the cause. */
export class SourceError extends BraidError {
  override readonly name = 'SourceError';
  constructor(message: string, options?: ErrorOptions) {
    super('BRAID_ERR_SOURCE', message, options);
  }
}

/** A single frame could not be turned into features (odd PCM bytes, corrupt image...). The stream goes on. */
export class BadFrameError extends BraidError {
  override readonly name = 'BadFrameError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super('BRAID_ERR_BAD_FRAME', message);
  }
}
