import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BraidError } from '../../src/core/errors.js';
import { type ModelConfig, modelDims, parseModelConfig } from '../../src/model/config.js';
import { FusedStepKernel } from '../../src/model/fused-kernel.js';
import {
  checkFeatures,
  jsonDifferences,
  loadModel,
  MODEL_JSON,
  saveModel,
  WEIGHTS_BIN,
} from '../../src/model/model-io.js';
import { createModel, type Model, mulberry32, randomWeights } from '../../src/model/weights.js';

const featureConfig = {
  audio: { sampleRate: 16000, melBands: 40, hopMs: 10 },
  video: { size: [8, 8] },
  text: null,
};

const config: ModelConfig = parseModelConfig({
  inputLayout: { audio: 6, video: 4, text: 2, mask: 3 },
  encoderUnits: { audio: 5, video: 3, text: 2 },
  hidden: 7,
  cell: 'gru',
  labels: ['speech', 'music', 'laughter'],
  head: 'sigmoid',
  featureConfig,
  normalization: {
    mean: Array.from({ length: 15 }, (_, i) => i / 10),
    std: Array.from({ length: 15 }, (_, i) => 1 + i / 7),
  },
});

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'braid-model-io-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
async function saved(model: Model = createModel(config, randomWeights(config, { seed: 3, biasScale: 0.2 }))) {
  const dir = path.join(root, `m${counter++}`);
  await saveModel(model, dir);
  return { dir, model };
}

async function modelError(promise: Promise<unknown>): Promise<BraidError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BraidError);
  return error as BraidError;
}

function predict(model: Model): Float32Array {
  const d = modelDims(model.config);
  const kernel = new FusedStepKernel(model, 2);
  const next = mulberry32(11);
  const x = Float32Array.from({ length: 2 * d.input }, () => next());
  const y = new Float32Array(2 * d.labels);
  kernel.step(2, x, new Float32Array(2 * d.state), y, new Float32Array(2 * d.state));
  return y;
}

describe('saveModel / loadModel', () => {
  it('round-trips config, normalization, feature config and weights bit for bit', async () => {
    for (const cell of ['gru', 'lstm'] as const) {
      const c = parseModelConfig({ ...config, cell });
      const { dir, model } = await saved(createModel(c, randomWeights(c, { seed: 5, biasScale: 0.3 })));
      const json = JSON.parse(await readFile(path.join(dir, MODEL_JSON), 'utf8'));
      expect(json.format).toBe('braid-model');
      expect(json.weightsManifest[0].paths).toEqual([WEIGHTS_BIN]);
      const loaded = await loadModel(dir, { featureConfig, inputLayout: config.inputLayout });
      expect(loaded.config).toEqual(model.config);
      expect(Object.keys(loaded.weights).sort()).toEqual(Object.keys(model.weights).sort());
      for (const [name, w] of Object.entries(model.weights)) expect(loaded.weights[name]).toEqual(w);
      expect(predict(loaded)).toEqual(predict(model));
    }
  });

  it('refuses a model whose feature config differs from the pipeline, naming the differing fields', async () => {
    const { dir } = await saved();
    const e = await modelError(
      loadModel(dir, {
        featureConfig: { ...featureConfig, audio: { ...featureConfig.audio, melBands: 64 }, extra: 1 },
        inputLayout: config.inputLayout,
      }),
    );
    expect(e.code).toBe('BRAID_ERR_FEATURE_MISMATCH');
    expect(e.message).toContain('featureConfig.audio.melBands: model has 40, pipeline expects 64');
    expect(e.message).toContain('featureConfig.extra: model has nothing, pipeline expects 1');
  });

  it('refuses a model whose input layout differs, and accepts the same JSON with keys in another order', async () => {
    const { dir } = await saved();
    const e = await modelError(
      loadModel(dir, { featureConfig, inputLayout: { ...config.inputLayout, video: 5 } }),
    );
    expect(e.code).toBe('BRAID_ERR_FEATURE_MISMATCH');
    expect(e.message).toContain('inputLayout.video: model has 4, pipeline expects 5');
    const reordered = {
      text: null,
      video: { size: [8, 8] },
      audio: { hopMs: 10, melBands: 40, sampleRate: 16000 },
    };
    await expect(
      loadModel(dir, { featureConfig: reordered, inputLayout: config.inputLayout }),
    ).resolves.toBeDefined();
  });

  it('names the path of differences inside arrays and of type changes', () => {
    expect(jsonDifferences({ a: [1, 2, { b: 3 }] }, { a: [1, 2, { b: '3' }] }, 'f')).toEqual([
      'f.a[2].b: model has 3, pipeline expects "3"',
    ]);
    expect(jsonDifferences({ a: [1, 2] }, { a: [1] }, 'f')).toEqual([
      'f.a: model has 2 entries, pipeline expects 1 entry',
    ]);
    expect(jsonDifferences({ a: 1 }, [1], 'f')).toEqual(['f: model has {"a":1}, pipeline expects [1]']);
    expect(() => checkFeatures(config, { featureConfig, inputLayout: config.inputLayout })).not.toThrow();
  });

  it('reports a missing directory, a missing model.json and a missing weights file as BRAID_ERR_MODEL', async () => {
    let e = await modelError(loadModel(path.join(root, 'nope')));
    expect(e.code).toBe('BRAID_ERR_MODEL');
    expect(e.message).toMatch(/model directory ".*nope" does not exist/);

    const { dir } = await saved();
    await rm(path.join(dir, WEIGHTS_BIN));
    e = await modelError(loadModel(dir));
    expect(e.code).toBe('BRAID_ERR_MODEL');
    expect(e.message).toContain(`has no ${WEIGHTS_BIN}`);

    await rm(path.join(dir, MODEL_JSON));
    e = await modelError(loadModel(dir));
    expect(e.message).toContain(`has no ${MODEL_JSON}`);

    const file = path.join(root, 'plain-file');
    await writeFile(file, 'x');
    e = await modelError(loadModel(file));
    expect(e.message).toContain('is not a directory');
  });

  it('reports corrupt JSON and a model.json of another format', async () => {
    const { dir } = await saved();
    const file = path.join(dir, MODEL_JSON);
    const good = await readFile(file, 'utf8');
    await writeFile(file, good.slice(0, good.length / 2));
    let e = await modelError(loadModel(dir));
    expect(e.code).toBe('BRAID_ERR_MODEL');
    expect(e.message).toContain('is not valid JSON');

    await writeFile(file, JSON.stringify({ ...JSON.parse(good), format: 'layers-model' }));
    e = await modelError(loadModel(dir));
    expect(e.message).toMatch(/is not a braid model: format/);
  });

  it('reports an invalid config naming the field', async () => {
    const { dir } = await saved();
    const file = path.join(dir, MODEL_JSON);
    const json = JSON.parse(await readFile(file, 'utf8'));
    json.modelTopology.cell = 'rnn';
    json.modelTopology.normalization.std[3] = 0;
    await writeFile(file, JSON.stringify(json));
    const e = await modelError(loadModel(dir));
    expect(e.code).toBe('BRAID_ERR_MODEL');
    expect(e.message).toContain('cell:');
    expect(e.message).toContain('normalization.std.3: must be finite and > 0');
  });

  it('reports weights whose shapes do not match the config', async () => {
    const { dir } = await saved();
    const file = path.join(dir, MODEL_JSON);
    const json = JSON.parse(await readFile(file, 'utf8'));
    json.modelTopology.hidden = 8; // the saved weights are for hidden = 7
    await writeFile(file, JSON.stringify(json));
    const e = await modelError(loadModel(dir));
    expect(e.code).toBe('BRAID_ERR_MODEL');
    expect(e.message).toMatch(
      /weight cell\/kernel in ".*" has shape \[13, 21\], the config needs \[13, 24\]/,
    );
  });

  it('ties weights.bin to model.json by its sha256: a corrupt file or one from another save is refused', async () => {
    const { dir } = await saved();
    const weightsFile = path.join(dir, WEIGHTS_BIN);
    const json = JSON.parse(await readFile(path.join(dir, MODEL_JSON), 'utf8'));
    const bytes = await readFile(weightsFile);
    expect(json.weightsSha256).toBe(createHash('sha256').update(bytes).digest('hex'));

    // One flipped bit, same size: every shape check passes, only the hash can tell.
    const flipped = Buffer.from(bytes);
    flipped[17] = (flipped[17] as number) ^ 0x01;
    await writeFile(weightsFile, flipped);
    let e = await modelError(loadModel(dir));
    expect(e.code).toBe('BRAID_ERR_MODEL');
    expect(e.message).toMatch(
      /weights\.bin in ".*" is not the one model\.json was saved with \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\)/,
    );

    // The weights of another save of the same architecture (a crash between the two renames leaves this pair).
    const other = await saved(createModel(config, randomWeights(config, { seed: 4, biasScale: 0.2 })));
    await writeFile(weightsFile, await readFile(path.join(other.dir, WEIGHTS_BIN)));
    e = await modelError(loadModel(dir));
    expect(e.message).toContain('come from different saves');

    // A model.json saved before the hash existed still loads.
    await writeFile(weightsFile, bytes);
    delete json.weightsSha256;
    await writeFile(path.join(dir, MODEL_JSON), JSON.stringify(json));
    await expect(loadModel(dir)).resolves.toBeDefined();
  });

  it('reports a truncated weights file and a weights path leaving the directory', async () => {
    const { dir } = await saved();
    await truncate(path.join(dir, WEIGHTS_BIN), 100);
    let e = await modelError(loadModel(dir));
    expect(e.code).toBe('BRAID_ERR_MODEL');
    expect(e.message).toMatch(/hold 100 bytes, the manifest describes \d+/);

    const other = await saved();
    const file = path.join(other.dir, MODEL_JSON);
    const json = JSON.parse(await readFile(file, 'utf8'));
    json.weightsManifest[0].paths = ['../m0/weights.bin'];
    await writeFile(file, JSON.stringify(json));
    e = await modelError(loadModel(other.dir));
    expect(e.message).toContain('leaves the model directory');
  });
});
