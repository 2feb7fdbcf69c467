import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InteropError } from '../../src/interop/errors.js';
import { importModel } from '../../src/interop/import-model.js';
import { type ImportFeatures, importKerasModel } from '../../src/interop/keras-import.js';
import type { LayersModelFiles } from '../../src/interop/layers-files.js';
import { liveWindowing } from '../../src/interop/windowing.js';
import { mulberry32 } from '../../src/model/weights.js';

const FEATURES: ImportFeatures = {
  featureConfig: null,
  inputLayout: { audio: 1, video: 1, text: 0, mask: 3 },
  labels: ['a', 'b'],
  windowing: liveWindowing(),
};
const F = 5;

type Layer = { class_name: string; config: Record<string, unknown> };
const input = (shape: (number | null)[] = [null, null, F]): Layer => ({
  class_name: 'InputLayer',
  config: { batch_input_shape: shape, name: 'input' },
});
const dense = (name: string, units: number, activation = 'linear', extra = {}): Layer => ({
  class_name: 'Dense',
  config: { name, units, activation, ...extra },
});
const gru = (name = 'gru', extra: Record<string, unknown> = {}): Layer => ({
  class_name: 'GRU',
  config: {
    name,
    units: 3,
    activation: 'tanh',
    recurrent_activation: 'sigmoid',
    return_sequences: true,
    ...extra,
  },
});
const lstm = (name = 'lstm'): Layer => ({
  class_name: 'LSTM',
  config: { name, units: 3, activation: 'tanh', recurrent_activation: 'sigmoid', return_sequences: true },
});

/** A layers model from its layers and weight shapes, seeded values. */
function files(
  layers: Layer[],
  shapes: Record<string, number[]>,
  className = 'Sequential',
): LayersModelFiles {
  const next = mulberry32(3);
  return {
    file: 'model.json',
    topology: { class_name: className, config: { name: 'm', layers } },
    weights: Object.entries(shapes).map(([name, shape]) => ({
      name,
      shape,
      values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => next() - 0.5),
    })),
  };
}

const GOOD_WEIGHTS = {
  'enc/kernel': [F, 4],
  'enc/bias': [4],
  'gru/gru_cell/kernel': [4, 9],
  'gru/gru_cell/recurrent_kernel': [3, 9],
  'gru/gru_cell/bias': [2, 9],
  'head/kernel': [3, 2],
  'head/bias': [2],
};
const good = (): Layer[] => [input(), dense('enc', 4, 'relu'), gru(), dense('head', 2, 'sigmoid')];

function refusal(f: LayersModelFiles, features: ImportFeatures = FEATURES): InteropError {
  try {
    importKerasModel(f, features);
  } catch (error) {
    if (error instanceof InteropError) return error;
    throw error;
  }
  throw new Error('the import was not refused');
}

describe('braid import maps', () => {
  it('Dense encoder, GRU (bias [2, 3H]: reset_after) and a sigmoid head, weights found under layer/cell/leaf', () => {
    const { model, layers } = importKerasModel(files(good(), GOOD_WEIGHTS), FEATURES);
    expect(model.config).toMatchObject({
      fusedEncoder: [{ units: 4, activation: 'relu' }],
      cell: 'gru',
      resetAfter: true,
      hidden: 3,
      head: 'sigmoid',
      labels: ['a', 'b'],
      encoderUnits: { audio: 0, video: 0, text: 0 },
    });
    expect(layers.map((l) => l.mappedTo)).toEqual([
      'fusedEncoder[0] (4 units, relu)',
      'cell gru (3 units, reset_after true)',
      'head sigmoid (2 labels)',
    ]);
  });

  it('Dropout as nothing, Dense + Activation as one layer, Normalization from its config (broadcast, ε on zero variance)', () => {
    const layers = [
      input(),
      { class_name: 'Normalization', config: { name: 'norm', axis: -1, mean: 2, variance: [0, 4, 1, 1, 1] } },
      { class_name: 'Dropout', config: { name: 'drop', rate: 0.5 } },
      gru(),
      dense('head', 2),
      { class_name: 'Activation', config: { name: 'act', activation: 'softmax' } },
    ];
    const { model, layers: mapped } = importKerasModel(
      files(layers, {
        'gru/kernel': [F, 9],
        'gru/recurrent_kernel': [3, 9],
        'gru/bias': [9],
        'head/kernel': [3, 2],
        'head/bias': [2],
      }),
      FEATURES,
    );
    expect(model.config.normalization).toEqual({ mean: [2, 2, 2, 2, 2], std: [1e-7, 2, 1, 1, 1] });
    expect(model.config).toMatchObject({ fusedEncoder: [], resetAfter: false, head: 'softmax' });
    expect(mapped.map((l) => [l.layer, l.mappedTo])).toContainEqual([
      'drop',
      'nothing (identity at inference)',
    ]);
    expect(mapped.map((l) => [l.layer, l.mappedTo])).toContainEqual(['act', 'activation of the head']);
  });
});

describe('braid import refuses, naming the layer and why', () => {
  const W = GOOD_WEIGHTS;
  it.each<[string, Layer[], string, string, RegExp]>([
    [
      'a Bidirectional layer',
      [
        input(),
        { class_name: 'Bidirectional', config: { name: 'bi', layer: gru() } },
        dense('head', 2, 'sigmoid'),
      ],
      'unsupported_layer',
      'bi',
      /Bidirectional.*windows that have not happened yet/,
    ],
    [
      'a TimeDistributed recurrent layer',
      [
        input(),
        { class_name: 'TimeDistributed', config: { name: 'td', layer: gru('inner') } },
        dense('head', 2, 'sigmoid'),
      ],
      'unsupported_layer',
      'td',
      /TimeDistributed\(Dense\) only, not TimeDistributed\(GRU\)/,
    ],
    [
      'stacked recurrent layers',
      [input(), dense('enc', 4), gru(), lstm(), dense('head', 2, 'sigmoid')],
      'unsupported_layer',
      'lstm',
      /stacked recurrent layers.*"gru" \(GRU\) is already one/,
    ],
    [
      'return_sequences false',
      [input(), dense('enc', 4), gru('gru', { return_sequences: false }), dense('head', 2, 'sigmoid')],
      'unsupported_setting',
      'gru',
      /return_sequences is false/,
    ],
    [
      "tfjs' default hard sigmoid",
      [
        input(),
        dense('enc', 4),
        gru('gru', { recurrent_activation: 'hardSigmoid' }),
        dense('head', 2, 'sigmoid'),
      ],
      'unsupported_setting',
      'gru',
      /recurrent_activation "hardsigmoid"/,
    ],
    [
      'go_backwards',
      [input(), dense('enc', 4), gru('gru', { go_backwards: true }), dense('head', 2, 'sigmoid')],
      'unsupported_setting',
      'gru',
      /go_backwards/,
    ],
    [
      'another layer',
      [input(), { class_name: 'Conv1D', config: { name: 'conv' } }, gru(), dense('head', 2, 'sigmoid')],
      'unsupported_layer',
      'conv',
      /Conv1D is none of them/,
    ],
    [
      'a second Dense after the head',
      [input(), dense('enc', 4), gru(), dense('head', 2, 'sigmoid'), dense('more', 2, 'sigmoid')],
      'unsupported_layer',
      'more',
      /head is one Dense layer/,
    ],
    [
      'a head that outputs logits',
      [input(), dense('enc', 4), gru(), dense('head', 2)],
      'unsupported_setting',
      'head',
      /sigmoid or softmax/,
    ],
    [
      'an encoder activation the kernels lack',
      [input(), dense('enc', 4, 'elu'), gru(), dense('head', 2, 'sigmoid')],
      'unsupported_setting',
      'enc',
      /activation "elu"/,
    ],
    [
      'a normalization after an encoder',
      [
        input(),
        dense('enc', 4),
        { class_name: 'BatchNormalization', config: { name: 'bn' } },
        gru(),
        dense('head', 2, 'sigmoid'),
      ],
      'unsupported_layer',
      'bn',
      /normalizes the input once/,
    ],
    [
      'an inverted Normalization',
      [
        input(),
        { class_name: 'Normalization', config: { name: 'n', axis: -1, invert: true, mean: 0, variance: 1 } },
        gru(),
        dense('head', 2, 'sigmoid'),
      ],
      'unsupported_setting',
      'n',
      /invert/,
    ],
    [
      'a head of the wrong width',
      [input(), dense('enc', 4), gru(), dense('head', 3, 'sigmoid')],
      'shape_mismatch',
      'head',
      /3 outputs, but there are 2 labels \(a, b\): name 3 with --labels/,
    ],
  ])('%s', (_, layers, reason, layer, message) => {
    const error = refusal(files(layers, W));
    expect(error).toMatchObject({ code: 'BRAID_ERR_INTEROP', reason, layer });
    expect(error.message).toMatch(message);
    expect(error.message).toContain(`"${layer}"`);
  });

  it('a model taking other features, or no time axis', () => {
    expect(refusal(files([input([null, null, 6]), ...good().slice(1)], W)).message).toMatch(
      /takes 6 features per window, the exported windows have 5/,
    );
    expect(refusal(files([input([null, F]), ...good().slice(1)], W)).message).toMatch(/shape \[None, 5\]/);
  });

  it('a missing weight, naming it and what the file has; a GRU whose bias contradicts reset_after', () => {
    const { 'gru/gru_cell/recurrent_kernel': _, ...missing } = W;
    expect(refusal(files(good(), missing)).message).toMatch(
      /no weight "gru\/…\/recurrent_kernel".*gru\/gru_cell\/kernel/,
    );
    const contradiction = refusal(
      files([input(), dense('enc', 4), gru('gru', { reset_after: true }), dense('head', 2, 'sigmoid')], {
        ...W,
        'gru/gru_cell/bias': [9],
      }),
    );
    expect(contradiction).toMatchObject({ reason: 'shape_mismatch', layer: 'gru' });
    expect(contradiction.message).toMatch(/reset_after is true but the bias has shape \[9\]/);
  });

  it('a functional model that branches, and a model without a recurrent layer', () => {
    const node = (from: string) => [[[from, 0, 0, {}]]];
    const functional = files(
      [
        { ...input(), name: 'input', inbound_nodes: [] } as Layer,
        { ...dense('a', 4), name: 'a', inbound_nodes: node('input') } as Layer,
        { ...dense('b', 4), name: 'b', inbound_nodes: node('input') } as Layer,
      ],
      {},
      'Functional',
    );
    expect(refusal(functional)).toMatchObject({ reason: 'unsupported_layer', layer: 'input' });
    expect(refusal(functional).message).toMatch(/feeds 2 layers \(a, b\)/);
    expect(refusal(files([input(), dense('enc', 4), dense('head', 2, 'sigmoid')], W)).message).toMatch(
      /no GRU or LSTM/,
    );
  });
});

describe('braid import of a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'braid-import-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('asks for --features-from when the model does not say which features it was trained on', async () => {
    const file = join(dir, 'model.json');
    await writeFile(file, JSON.stringify({ format: 'layers-model', modelTopology: {}, weightsManifest: [] }));
    await expect(importModel(file)).rejects.toMatchObject({
      reason: 'missing_metadata',
      message: expect.stringContaining('--features-from'),
    });
  });

  it('refuses what is not a layers model, naming the file', async () => {
    const file = join(dir, 'graph.json');
    await writeFile(file, JSON.stringify({ format: 'graph-model', modelTopology: {}, weightsManifest: [] }));
    await expect(importModel(file)).rejects.toMatchObject({
      reason: 'bad_file',
      message: expect.stringMatching(/graph-model/),
    });
    await writeFile(file, '{not json');
    await expect(importModel(file)).rejects.toMatchObject({
      reason: 'bad_file',
      message: expect.stringMatching(/not valid JSON/),
    });
  });
});
