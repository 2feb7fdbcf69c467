import { BraidError } from '../core/errors.js';
import { jsonDifferences } from '../core/json-diff.js';
import { FEATURE_MODALITIES, type ModelConfig, modelDims } from './config.js';
import {
  createModel,
  encoderBiasName,
  encoderKernelName,
  type Model,
  type ModelWeights,
  weightSpecs,
} from './weights.js';

/**
 * What members of an ensemble must share: one input (features, layout, normalization), one windowing and one output
 * (labels, head), one cell. Normalization is part of the input: members trained on the same recordings compute the
 * same statistics, and one set is all the merged model can apply.
 */
const SHARED = [
  'inputLayout',
  'featureConfig',
  'windowing',
  'normalization',
  'labels',
  'head',
  'cell',
  'resetAfter',
] as const;

const fail = (message: string): never => {
  throw new BraidError('BRAID_ERR_MODEL', `cannot ensemble these models: ${message}`);
};

/**
 * One model that is the ensemble of `members`: its logits are the mean of theirs, exactly, step after step. The
 * members sit side by side in one wider model: each modality's encoder concatenates theirs, the cell's hidden state
 * is theirs concatenated with every gate's kernel block-diagonal (a member's units read only its own encoder outputs,
 * the shared presence mask and its own state), and the head is theirs stacked, divided by the member count. So the
 * ensemble runs on every backend unchanged, as one batched step instead of one per member; the price is the zeros of
 * the off-diagonal blocks, which the dense kernels multiply.
 *
 * Averaging logits rather than probabilities (a sigmoid of the mean rather than a mean of sigmoids) is what a single
 * head can compute; it is the geometric mean of the members' odds. Members need per-modality encoders (what braid
 * train builds), not an imported fused encoder.
 */
export function ensembleModels(members: readonly Model[]): Model {
  const first = members[0];
  if (first === undefined || members.length < 2)
    return fail(`needs at least 2 members, got ${members.length}`);
  members.forEach((m, i) => {
    if (m.config.fusedEncoder !== undefined)
      fail(
        `member ${i + 1} has a fused encoder (an imported model); only per-modality encoders can be merged`,
      );
    for (const key of SHARED) {
      const d = jsonDifferences(m.config[key], first.config[key], key, 3);
      if (d.length > 0)
        fail(
          `member ${i + 1} differs from member 1 in ${d.map((x) => `${x.path} (${x.left} vs ${x.right})`).join(', ')}`,
        );
    }
  });
  const configs = members.map((m) => m.config);
  const sum = (f: (c: ModelConfig) => number): number => configs.reduce((a, c) => a + f(c), 0);
  const config: ModelConfig = {
    ...first.config,
    encoderUnits: {
      audio: sum((c) => c.encoderUnits.audio),
      video: sum((c) => c.encoderUnits.video),
      text: sum((c) => c.encoderUnits.text),
    },
    hidden: sum((c) => c.hidden),
  };
  const dims = modelDims(config);
  const weights: Record<string, Float32Array> = {};
  for (const spec of weightSpecs(config))
    weights[spec.name] = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
  const w = (name: string): Float32Array => weights[name] as Float32Array;

  // Where member k's encoder units and hidden units start in the merged model.
  const unitsBefore = { audio: 0, video: 0, text: 0 };
  let hiddenBefore = 0;
  for (const member of members) {
    const md = modelDims(member.config);
    const mw: ModelWeights = member.weights;
    const get = (name: string): Float32Array => mw[name] as Float32Array;
    // Encoders: member columns side by side over the same inputs.
    for (const m of FEATURE_MODALITIES) {
      const units = member.config.encoderUnits[m];
      if (units === 0) continue;
      const total = config.encoderUnits[m];
      const kernel = get(encoderKernelName(m));
      const out = w(encoderKernelName(m));
      for (let i = 0; i < member.config.inputLayout[m]; i++)
        out.set(kernel.subarray(i * units, (i + 1) * units), i * total + unitsBefore[m]);
      w(encoderBiasName(m)).set(get(encoderBiasName(m)), unitsBefore[m]);
    }
    // A member's cell-input row → the merged row: its encoder units' new places, the mask rows shared.
    const cellRow = (row: number): number => {
      const maskRow = md.cellInput - 3;
      if (row >= maskRow) return dims.cellInput - 3 + (row - maskRow);
      for (const m of [...FEATURE_MODALITIES].reverse())
        if (row >= md.encoderOffset[m])
          return dims.encoderOffset[m] + unitsBefore[m] + (row - md.encoderOffset[m]);
      return fail(`bad cell row ${row}`);
    };
    // A member's gate column (gate q, unit j) → the merged column of that gate for its unit.
    const gateColumn = (col: number): number =>
      Math.floor(col / md.hidden) * dims.hidden + hiddenBefore + (col % md.hidden);
    const copyGates = (name: string, rows: number, toRow: (r: number) => number): void => {
      const src = get(name);
      const dst = w(name);
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < md.gates; c++)
          dst[toRow(r) * dims.gates + gateColumn(c)] = src[r * md.gates + c] as number;
    };
    copyGates('cell/kernel', md.cellInput, cellRow);
    copyGates('cell/recurrent_kernel', md.hidden, (r) => hiddenBefore + r);
    copyGates('cell/bias', get('cell/bias').length / md.gates, (r) => r);
    // Head: the mean of the members' logits.
    const head = get('head/kernel');
    const scale = 1 / members.length;
    for (let r = 0; r < md.hidden; r++)
      for (let l = 0; l < md.labels; l++)
        w('head/kernel')[(hiddenBefore + r) * dims.labels + l] = (head[r * md.labels + l] as number) * scale;
    const bias = get('head/bias');
    for (let l = 0; l < md.labels; l++)
      w('head/bias')[l] = (w('head/bias')[l] as number) + (bias[l] as number) * scale;

    for (const m of FEATURE_MODALITIES) unitsBefore[m] += member.config.encoderUnits[m];
    hiddenBefore += md.hidden;
  }
  return createModel(config, weights);
}
