import type { ModelConfig } from '../model/config.js';
import { DEFAULT_WINDOWING, parseWindowing, type WindowingConfig } from '../pipeline/prediction-pipeline.js';

/**
 * The one place interop reads windowing from. It takes it where the live pipeline does
 * (PredictionPipelineRunner: DEFAULT_WINDOWING with the model's saved windowing over it), so exported windows are
 * the windows a model is served with; `saved` is a model's `config.windowing` or the `windowing` of an export's
 * metadata (same JSON form). When the windowing schema moves to its own module, repoint this function only.
 */
export function liveWindowing(saved?: ModelConfig['windowing']): WindowingConfig {
  return { ...DEFAULT_WINDOWING, ...parseWindowing(saved) };
}

/** Windowing as JSON (what a model config and an export's metadata hold): no Infinity in JSON, so null. */
export function windowingJson(windowing: WindowingConfig): Record<string, unknown> {
  const { idleTimeout, ...rest } = windowing;
  return { ...rest, idleTimeout: Number.isFinite(idleTimeout) ? idleTimeout : null };
}
