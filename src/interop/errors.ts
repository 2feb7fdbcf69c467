import { BraidError } from '../core/errors.js';

/**
 * Why a file could not be exported to or imported from the Keras / NumPy world. Stable keys, for tests and callers:
 * - `unsupported_layer`: a layer braid cannot map (another kind, a second recurrent layer, a layer out of place);
 * - `unsupported_setting`: a mapped layer with a setting braid's math does not have (an activation, go_backwards…);
 * - `shape_mismatch`: weights or widths that do not fit the model or the exported windows;
 * - `bad_file`: a file that is not what it should be (not JSON, not a layers model, not a braid windows .npz);
 * - `missing_metadata`: nothing says which features, labels or windowing the model was trained on;
 * - `too_large`: more data than the container format holds.
 */
export type InteropReason =
  | 'unsupported_layer'
  | 'unsupported_setting'
  | 'shape_mismatch'
  | 'bad_file'
  | 'missing_metadata'
  | 'too_large';

/** An export or import refused; `layer` names the Keras layer the refusal is about, when it is about one. */
export class InteropError extends BraidError {
  override readonly name = 'InteropError';
  constructor(
    readonly reason: InteropReason,
    message: string,
    readonly layer?: string,
    options?: ErrorOptions,
  ) {
    super('BRAID_ERR_INTEROP', message, options);
  }
}
