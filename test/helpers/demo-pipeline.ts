import { existsSync } from 'node:fs';
import { DEFAULT_FEATURE_CONFIG, featureLayout } from '../../src/features/config.js';
import { identityNormalization, type ModelConfig } from '../../src/model/config.js';
import { loadModel } from '../../src/model/model-io.js';
import { createModel, type Model, randomWeights } from '../../src/model/weights.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';

export const DEMO_MODEL_DIR = 'models/demo';

/** A seeded, untrained model on braid's default features: for tests of plumbing, not of accuracy. */
export function untrainedModel(seed = 7, hidden = 16): Model {
  const layout = featureLayout(DEFAULT_FEATURE_CONFIG);
  const config: ModelConfig = {
    inputLayout: { audio: layout.audio, video: layout.video, text: layout.text, mask: 3 },
    encoderUnits: { audio: 8, video: 8, text: 8 },
    hidden,
    cell: 'gru',
    labels: ['speech', 'motion', 'typing', 'conversation'],
    head: 'sigmoid',
    featureConfig: DEFAULT_FEATURE_CONFIG,
    normalization: identityNormalization(layout),
  };
  return createModel(config, randomWeights(config, { seed, biasScale: 0.1 }));
}

/** The real live pipeline: the bundled demo model when it is there, else an untrained one of the same shape. */
export async function demoPipelineForTests(): Promise<PredictionPipelineRunner> {
  const model = existsSync(DEMO_MODEL_DIR) ? await loadModel(DEMO_MODEL_DIR) : untrainedModel();
  return PredictionPipelineRunner.create({ model, backend: 'cpu-fused' });
}
