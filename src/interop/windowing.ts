import {
  modelWindowing,
  type SavedWindowing,
  saveWindowing,
  type WindowingConfig,
} from '../align/windowing.js';
import type { ModelConfig } from '../model/config.js';

/**
 * The one place interop reads windowing from: src/align/windowing.ts, as the live pipeline reads it
 * (PredictionPipelineRunner: the model's saved windowing, or the live default for a model without one), so exported
 * windows are the windows a model is served with; `saved` is a model's `config.windowing` or the `windowing` of an
 * export's metadata (same JSON form).
 */
export function liveWindowing(saved?: ModelConfig['windowing']): WindowingConfig {
  return modelWindowing(saved).windowing;
}

/** Windowing as JSON (what a model config and an export's metadata hold): no Infinity in JSON, so null. */
export function windowingJson(windowing: WindowingConfig): SavedWindowing {
  return saveWindowing(windowing);
}
