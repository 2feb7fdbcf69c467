import { lastValueFrom, type Observable, tap, toArray } from 'rxjs';
import type { WindowingConfig } from '../align/windowing.js';
import type { AnySourceEvent } from '../core/events.js';
import { FlowCredit } from '../core/flow-credit.js';
import type { FeatureConfig } from '../features/config.js';
import { loadPcmResampler } from '../features/resampler.js';
import type { FusedWindow } from '../model/runtime.js';
import { createFeatureStage } from '../pipeline/feature-stage.js';
import { DECODE_CREDITS } from '../pipeline/prediction-pipeline.js';
import { fromIterableWithCredit } from '../sources/credited-iterable.js';

/** One closed window of one stream with the fused model input the live pipeline would compute for it. */
export type FeaturedWindow = FusedWindow;

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
 * the feature stage of src/pipeline/feature-stage.ts (decode, align, featurize, fuse). The only difference is the
 * idle timeout, switched off.
 */
export async function featurizeEvents(
  events: AsyncIterable<AnySourceEvent> | Iterable<AnySourceEvent>,
  featureConfig: FeatureConfig,
  windowing: WindowingConfig,
  onEvent?: (event: AnySourceEvent) => void,
): Promise<FeaturizedEvents> {
  // Idle timeout off: it is a processing-time rule for live sources that stall; offline the whole recording is at
  // hand, so windows close on event time alone. The reader waits for the JPEG/PNG decoder's credits, so no frame of
  // a recording is dropped for want of room, however fast it reads.
  const resampler = await loadPcmResampler(featureConfig.audio.sampleRate);
  const credit = new FlowCredit();
  const { operator, alignment, features, drops } = createFeatureStage(
    featureConfig,
    { ...windowing, idleTimeout: Number.POSITIVE_INFINITY },
    { resampler, credit: credit.lane('decode', DECODE_CREDITS) },
  );
  const source: Observable<AnySourceEvent> = fromIterableWithCredit(events, credit);
  const windows = await lastValueFrom(
    source.pipe(
      tap((event) => onEvent?.(event)),
      operator,
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
