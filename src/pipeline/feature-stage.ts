import { map, type OperatorFunction, pipe } from 'rxjs';
import { type Alignment, type AlignmentOptions, createAlignment } from '../align/align-windows.js';
import type { CreditLane } from '../core/flow-credit.js';
import { createFeatureAggregator, type FeatureAggregator } from '../features/aggregator.js';
import type { FeatureConfig } from '../features/config.js';
import { decodeCompressedFrames } from '../features/decode-frames.js';
import { fuseWindowFeatures } from '../features/fuse.js';
import type { FusedWindow } from '../model/runtime.js';
import { DropCounter } from '../sources/drop-counter.js';

/**
 * The path from events to model inputs, shared by the live pipeline and the training dataset so that both see the
 * same windows: JPEG/PNG frames decoded to small raw frames, events aligned into windows and featurized per window,
 * and the features fused into one vector per window. `alignment`, `features` and `drops` hold its side outputs and
 * counters.
 */
export interface FeatureStage {
  readonly operator: OperatorFunction<unknown, FusedWindow>;
  readonly alignment: Alignment<Float32Array>;
  readonly features: FeatureAggregator;
  readonly drops: DropCounter;
}

export interface FeatureStageOptions {
  /** Credits of a waiting producer, spent by the JPEG/PNG decoder (see FlowCredit): nothing is dropped for room. */
  readonly credit?: CreditLane;
}

export function createFeatureStage(
  featureConfig: FeatureConfig,
  alignOptions: Omit<AlignmentOptions<Float32Array>, 'aggregator'>,
  options: FeatureStageOptions = {},
): FeatureStage {
  const drops = new DropCounter();
  const features = createFeatureAggregator(featureConfig);
  const alignment = createAlignment<Float32Array>({ ...alignOptions, aggregator: features.aggregator });
  const { thumbWidth, thumbHeight } = featureConfig.video;
  const operator = pipe(
    decodeCompressedFrames<unknown>({
      drops,
      width: thumbWidth,
      height: thumbHeight,
      ...(options.credit && { credit: options.credit, maxPending: options.credit.credits }),
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
      }),
    ),
  );
  return { operator, alignment, features, drops };
}
