import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import { createModel } from '../../src/model/weights.js';
import { DEFAULT_WINDOWING, PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';

const withWindowing = (windowing: unknown) => {
  const base = untrainedModel();
  return createModel({ ...base.config, windowing }, base.weights);
};

describe('the pipeline windows as its model was trained', () => {
  it('uses the windowing saved with the model, and the live default for models without one', async () => {
    const trained = await PredictionPipelineRunner.create({
      model: withWindowing({ ...DEFAULT_WINDOWING, size: 250_000, hop: 250_000, idleTimeout: null }),
      backend: 'cpu-fused',
    });
    expect(trained.windowing).toMatchObject({
      size: 250_000,
      hop: 250_000,
      idleTimeout: Number.POSITIVE_INFINITY,
    });
    const older = await PredictionPipelineRunner.create({ model: untrainedModel(), backend: 'cpu-fused' });
    expect(older.windowing).toEqual(DEFAULT_WINDOWING);
    const overridden = await PredictionPipelineRunner.create({
      model: withWindowing({ size: 250_000, hop: 250_000 }),
      backend: 'cpu-fused',
      windowing: { size: 1_000_000, hop: 1_000_000 },
    });
    expect(overridden.windowing.size).toBe(1_000_000);
  });

  it('refuses a model whose saved windowing is invalid, naming the field', async () => {
    await expect(
      PredictionPipelineRunner.create({ model: withWindowing({ size: -5 }), backend: 'cpu-fused' }),
    ).rejects.toThrow(InvalidOptionError);
    await expect(
      PredictionPipelineRunner.create({ model: withWindowing({ phase: 'sideways' }), backend: 'cpu-fused' }),
    ).rejects.toThrow(/saved windowing is invalid: phase/);
  });
});
