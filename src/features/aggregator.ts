import type { WindowAggregator } from '../align/aggregator.js';
import type { AnySourceEvent, Modality } from '../core/events.js';
import type { RefusalListener } from '../core/refusal.js';
import { DropCounter } from '../sources/drop-counter.js';
import { AudioFeaturizer } from './audio-features.js';
import { type FeatureConfig, parseFeatureConfig } from './config.js';
import type { PcmResampler } from './resampler.js';
import { TextFeaturizer } from './text-features.js';
import { VideoFeaturizer } from './video-features.js';

export interface FeatureAggregator {
  /** Hands the aligner one Float32Array per modality and window; see docs/features.md for the layouts. */
  readonly aggregator: WindowAggregator<Float32Array>;
  /** Frames skipped by reason (`unsupported_sample_rate`, `bad_video_size`, `text_too_long`...). */
  readonly stats: DropCounter;
}

const NO_FEATURES = new Float32Array(0);

/**
 * The live pipeline's window aggregator: "align raw events, then featurize per window". Each call sees one
 * modality's events of one window and returns that window's features, or an empty array when none of its events
 * was usable (the fused vector then marks the modality absent). Labels are not features: they get an empty array.
 * Bad frames are counted in `stats` and skipped (told to `onDrop` with the event's identity); the window goes on.
 */
export interface FeatureAggregatorOptions {
  /** Hears of every frame dropped, with its identity. */
  readonly onDrop?: RefusalListener;
  /** Turns audio of other rates and stereo into what the features take; without one such frames are dropped. */
  readonly resampler?: PcmResampler;
}

export function createFeatureAggregator(
  config: FeatureConfig,
  options: FeatureAggregatorOptions = {},
): FeatureAggregator {
  const checked = parseFeatureConfig(config);
  const stats = new DropCounter(options.onDrop);
  const audio = new AudioFeaturizer(checked.audio, stats, undefined, options.resampler);
  const video = new VideoFeaturizer(checked.video, stats);
  const text = new TextFeaturizer(checked.text, stats);
  const aggregate = (modality: Modality, events: readonly AnySourceEvent[]): Float32Array => {
    switch (modality) {
      case 'audio':
        return audio.featurize(events);
      case 'video':
        return video.featurize(events);
      case 'text':
        return text.featurize(events);
      case 'label':
        return NO_FEATURES;
    }
  };
  return { aggregator: { aggregate }, stats };
}
