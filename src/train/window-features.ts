import { from, lastValueFrom, map, type Observable, tap, toArray } from 'rxjs';
import { createAlignment } from '../align/align-windows.js';
import type { AnySourceEvent, Modality } from '../core/events.js';
import type { Micros } from '../core/time.js';
import { createFeatureAggregator } from '../features/aggregator.js';
import type { FeatureConfig } from '../features/config.js';
import { decodeCompressedFrames } from '../features/decode-frames.js';
import { fuseWindowFeatures } from '../features/fuse.js';
import type { WindowingConfig } from '../pipeline/prediction-pipeline.js';
import { DropCounter } from '../sources/drop-counter.js';

/** One closed window of one stream with the fused model input the live pipeline would compute for it. */
export interface FeaturedWindow {
  readonly streamId: string;
  readonly index: number;
  readonly start: Micros;
  readonly end: Micros;
  readonly x: Float32Array;
  readonly present: Readonly<Record<Modality, boolean>>;
}

/** Everything the stage dropped or refused, by stable reason, so a dataset can show what it lost. */
export interface FeatureCounters {
  readonly eventsIn: number;
  readonly windows: number;
  readonly late: number;
  readonly rejected: Readonly<Record<string, number>>;
  readonly badFrames: Readonly<Record<string, number>>;
  readonly decodeDropped: Readonly<Record<string, number>>;
  /** Last message per bad-frame reason, for error messages that say what was wrong. */
  readonly badFrameMessages: Readonly<Record<string, string>>;
}

export interface FeaturizedEvents {
  readonly windows: FeaturedWindow[];
  readonly counters: FeatureCounters;
}

/**
 * Offline twin of the live path in src/pipeline/prediction-pipeline.ts, built from the same pieces in the same order:
 * decodeCompressedFrames -> createAlignment with createFeatureAggregator -> fuseWindowFeatures. The only difference
 * is the idle timeout, switched off: it is a processing-time rule for live sources that stall, and offline the whole
 * recording is at hand, so windows close on event time alone (the aligner's contents then depend on timestamps only).
 */
export async function featurizeEvents(
  events: AsyncIterable<AnySourceEvent> | Iterable<AnySourceEvent>,
  featureConfig: FeatureConfig,
  windowing: WindowingConfig,
  onEvent?: (event: AnySourceEvent) => void,
): Promise<FeaturizedEvents> {
  const drops = new DropCounter();
  const features = createFeatureAggregator(featureConfig);
  const alignment = createAlignment<Float32Array>({
    ...windowing,
    idleTimeout: Number.POSITIVE_INFINITY,
    aggregator: features.aggregator,
  });
  const { thumbWidth, thumbHeight } = featureConfig.video;
  const source: Observable<AnySourceEvent> = from(events);
  const windows = await lastValueFrom(
    source.pipe(
      tap((event) => onEvent?.(event)),
      decodeCompressedFrames<AnySourceEvent>({ drops, width: thumbWidth, height: thumbHeight }),
      alignment.align,
      map(
        (w): FeaturedWindow => ({
          streamId: w.streamId,
          index: w.index,
          start: w.start,
          end: w.end,
          x: fuseWindowFeatures(w, featureConfig),
          present: w.present,
        }),
      ),
      toArray(),
    ),
  );
  const stats = alignment.stats();
  const badFrames = features.stats.snapshot();
  const badFrameMessages: Record<string, string> = {};
  for (const reason of Object.keys(badFrames)) {
    const last = features.stats.lastError(reason);
    if (last !== undefined) badFrameMessages[reason] = last.message;
  }
  return {
    windows,
    counters: {
      eventsIn: stats.eventsIn,
      windows: stats.windowsOut,
      late: stats.late,
      rejected: stats.rejected,
      badFrames,
      decodeDropped: drops.snapshot(),
      badFrameMessages,
    },
  };
}
