import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WINDOWING,
  modelWindowing,
  parseWindowing,
  saveWindowing,
} from '../../src/align/windowing.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { createModel } from '../../src/model/weights.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { lineLogger } from '../helpers/logger.js';

const withWindowing = (windowing: unknown) => {
  const base = untrainedModel();
  return createModel({ ...base.config, windowing }, base.weights);
};

describe('one windowing (src/align/windowing.ts)', () => {
  it('round-trips through JSON, a disabled idle timeout as null', () => {
    const off = { ...DEFAULT_WINDOWING, idleTimeout: Number.POSITIVE_INFINITY };
    const json = JSON.parse(JSON.stringify(saveWindowing(off)));
    expect(json.idleTimeout).toBeNull();
    expect(parseWindowing(json)).toEqual(off);
    expect(parseWindowing(JSON.parse(JSON.stringify(saveWindowing(DEFAULT_WINDOWING))))).toEqual(
      DEFAULT_WINDOWING,
    );
  });

  it('reads a saved copy without a phase as aligned: it was written before per-stream phases existed', () => {
    const { phase: _phase, ...old } = saveWindowing(DEFAULT_WINDOWING);
    expect(parseWindowing(old).phase).toBe('aligned');
    expect(DEFAULT_WINDOWING.phase).toBe('stream');
  });

  it('refuses a partial or invalid copy, naming every field, instead of filling it from the default', () => {
    expect(() => parseWindowing({ size: 250_000, hop: 250_000 })).toThrow(
      /outOfOrderness: .*allowedLateness: .*idleTimeout: .*nonGating/,
    );
    expect(() => parseWindowing({ ...saveWindowing(DEFAULT_WINDOWING), hop: 600_000 })).toThrow(
      /hop: must be at most size/,
    );
    expect(() => parseWindowing({ ...saveWindowing(DEFAULT_WINDOWING), extra: 1 })).toThrow(
      InvalidOptionError,
    );
  });

  it('gives a model without a saved copy the live default, and says so', () => {
    expect(modelWindowing(undefined)).toEqual({ windowing: DEFAULT_WINDOWING, source: 'default' });
    expect(modelWindowing(saveWindowing(DEFAULT_WINDOWING)).source).toBe('model');
  });
});

describe('the pipeline windows as its model was trained', () => {
  it('uses the windowing saved with the model, and the live default for models without one', async () => {
    const logs: string[] = [];
    const trained = await PredictionPipelineRunner.create({
      model: withWindowing({
        ...saveWindowing(DEFAULT_WINDOWING),
        size: 250_000,
        hop: 250_000,
        idleTimeout: null,
      }),
      backend: 'cpu-fused',
      log: lineLogger((line) => logs.push(line)),
    });
    expect(trained.windowing).toMatchObject({
      size: 250_000,
      hop: 250_000,
      idleTimeout: Number.POSITIVE_INFINITY,
      phase: 'stream',
    });
    expect(trained.windowingSource).toBe('model');
    expect(logs.join('\n')).toMatch(
      /windowing 250 ms windows, .*idle timeout off.* \(saved with the model\)/,
    );
    const older = await PredictionPipelineRunner.create({
      model: untrainedModel(),
      backend: 'cpu-fused',
      log: lineLogger((line) => logs.push(line)),
    });
    expect(older.windowing).toEqual(DEFAULT_WINDOWING);
    expect(older.windowingSource).toBe('default');
    expect(logs.at(-1)).toMatch(/the live default: the model has none saved/);
    const overridden = await PredictionPipelineRunner.create({
      model: withWindowing({ ...saveWindowing(DEFAULT_WINDOWING), size: 250_000, hop: 250_000 }),
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
      PredictionPipelineRunner.create({
        model: withWindowing({ ...saveWindowing(DEFAULT_WINDOWING), phase: 'sideways' }),
        backend: 'cpu-fused',
      }),
    ).rejects.toThrow(/saved windowing is invalid: phase/);
  });
});
