import { BraidError } from '../core/errors.js';
import type { Window } from '../core/window.js';
import { type FeatureConfig, featureLayout } from './config.js';

const FUSED_MODALITIES = ['audio', 'video', 'text'] as const;

/**
 * The model's input for one window: [audio | video | text | mask], where mask holds 1 for each of audio, video and
 * text that has features in the window and 0 otherwise (its block is then zeros). A modality whose aggregator
 * returned an empty array (no usable frame) counts as absent. A block of the wrong length means the window was
 * featurized under another config: that is `BRAID_ERR_FEATURE_MISMATCH`, never silently padded.
 */
export function fuseWindowFeatures(window: Window<Float32Array>, config: FeatureConfig): Float32Array {
  const layout = featureLayout(config);
  const fused = new Float32Array(layout.total);
  let offset = 0;
  const maskOffset = layout.total - layout.mask;
  FUSED_MODALITIES.forEach((modality, m) => {
    const size = layout[modality];
    const block = window.contents[modality];
    if (block !== undefined && block.length > 0) {
      if (block.length !== size)
        throw new BraidError(
          'BRAID_ERR_FEATURE_MISMATCH',
          `window ${window.index} of stream "${window.streamId}": ${modality} features have ${block.length} values, the feature config needs ${size}`,
        );
      fused.set(block, offset);
      fused[maskOffset + m] = 1;
    }
    offset += size;
  });
  return fused;
}
