import { map, type OperatorFunction, pipe } from 'rxjs';
import { type Alignment, type AlignmentOptions, createAlignment } from '../align/align-windows.js';
import type { CreditLane } from '../core/flow-credit.js';
import type { RefusalListener } from '../core/refusal.js';
import { createFeatureAggregator, type FeatureAggregator } from '../features/aggregator.js';
import type { FeatureConfig } from '../features/config.js';
import { decodeCompressedFrames } from '../features/decode-frames.js';
import { fuseWindowFeatures } from '../features/fuse.js';
import type { PcmResampler } from '../features/resampler.js';
import type { FusedWindow } from '../model/runtime.js';
import { DropCounter } from '../sources/drop-counter.js';

/**
 * The path from events to model inputs, shared by the live pipeline and the training dataset so that both see the
 * same windows: JPEG/PNG frames decoded to small raw frames, events aligned into windows and featurized per window,
 * and the features fused into one vector per window. `alignment`, `features` and `drops` hold its side outputs and
 * counters; `options.onRefusal` hears of every event the decoder or the featurizers dropped (the aligner's own
 * refusals and late events are on `alignment.rejected$` and `late$`).
 */
export interface FeatureStage {
  readonly operator: OperatorFunction<unknown, FusedWindow>;
  readonly alignment: Alignment<Float32Array>;
  readonly features: FeatureAggregator;
  readonly drops: DropCounter;
}

export interface FeatureStageOptions {
  /** Hears of every event the decoder or the featurizers dropped. */
  readonly onRefusal?: RefusalListener;
  /** Audio of other rates and stereo, resampled to the features' rate (see AudioFeaturizer). */
  readonly resampler?: PcmResampler;
  /** Credits of a waiting producer, spent by the JPEG/PNG decoder (see FlowCredit): nothing is dropped for room. */
  readonly credit?: CreditLane;
}

export function createFeatureStage(
  featureConfig: FeatureConfig,
  alignOptions: Omit<AlignmentOptions<Float32Array>, 'aggregator'>,
  options: FeatureStageOptions = {},
): FeatureStage {
  const { onRefusal, resampler, credit } = options;
  const drops = new DropCounter(onRefusal);
  const features = createFeatureAggregator(featureConfig, { onDrop: onRefusal, resampler });
  const alignment = createAlignment<Float32Array>({ ...alignOptions, aggregator: features.aggregator });
  const { thumbWidth, thumbHeight } = featureConfig.video;
  const operator = pipe(
    decodeCompressedFrames<unknown>({
      drops,
      width: thumbWidth,
      height: thumbHeight,
      ...(credit && { credit, maxPending: credit.credits }),
    }),
    alignment.align,
    map(
      (w): FusedWindow => ({
        streamId: w.streamId,
        index: w.index,
        start: w.start,
        end: w.end,
        x: fuseWindowFeatures(w, featureConfig),
        present: w.present,
        ...(w.partial && { partial: true as const }),
      }),
    ),
  );
  return { operator, alignment, features, drops };
}
