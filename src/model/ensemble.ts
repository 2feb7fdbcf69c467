import { BraidError } from '../core/errors.js';
import { jsonDifferences } from '../core/json-diff.js';
import {
  encoderModalityAt,
  FEATURE_MODALITIES,
  type FeatureModality,
  gruResetsAfter,
  type ModelConfig,
  type ModelDims,
  modelDims,
  parseModelConfig,
} from './config.js';
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
] as const;

const fail = (message: string): never => {
  throw new BraidError('BRAID_ERR_MODEL', `cannot ensemble these models: ${message}`);
};

function checkMembers(members: readonly Model[]): void {
  const first = members[0];
  if (first === undefined || members.length < 2) fail(`needs at least 2 members, got ${members.length}`);
  members.forEach((m, i) => {
    if (m.config.fusedEncoder !== undefined)
      fail(
        `member ${i + 1} has a fused encoder (an imported model); only per-modality encoders can be merged`,
      );
    const differences = [
      ...SHARED.flatMap((key) => jsonDifferences(m.config[key], first?.config[key], key, 3)),
      // Unset means true: compared as the cell computes it, not as spelt.
      ...(m.config.cell === 'gru' && gruResetsAfter(m.config) !== gruResetsAfter(first?.config as ModelConfig)
        ? [
            {
              path: 'resetAfter',
              left: String(gruResetsAfter(m.config)),
              right: String(!gruResetsAfter(m.config)),
            },
          ]
        : []),
    ];
    if (differences.length > 0)
      fail(
        `member ${i + 1} differs from member 1 in ${differences
          .slice(0, 3)
          .map((x) => `${x.path} (${x.left} vs ${x.right})`)
          .join(
            ', ',
          )}; members must be trained by one command on the same recordings, other seeds or sizes only`,
      );
  });
}

/** The merged config: encoder units and hidden units summed, everything else the members'. */
function mergedConfig(members: readonly Model[]): ModelConfig {
  const sum = (f: (c: ModelConfig) => number): number => members.reduce((a, m) => a + f(m.config), 0);
  const first = (members[0] as Model).config;
  // Checked like a config read from disk, so a merge too wide to load again fails here, not at the next load.
  return parseModelConfig({
    ...first,
    encoderUnits: {
      audio: sum((c) => c.encoderUnits.audio),
      video: sum((c) => c.encoderUnits.video),
      text: sum((c) => c.encoderUnits.text),
    },
    hidden: sum((c) => c.hidden),
  });
}

/** Where one member's units start in the merged model. */
interface Placement {
  readonly encoder: Readonly<Record<FeatureModality, number>>;
  readonly hidden: number;
}

function placements(members: readonly Model[]): Placement[] {
  let encoder = { audio: 0, video: 0, text: 0 };
  let hidden = 0;
  return members.map((m) => {
    const at = { encoder, hidden };
    encoder = {
      audio: encoder.audio + m.config.encoderUnits.audio,
      video: encoder.video + m.config.encoderUnits.video,
      text: encoder.text + m.config.encoderUnits.text,
    };
    hidden += m.config.hidden;
    return at;
  });
}

type Weights = Record<string, Float32Array>;
const weight = (weights: ModelWeights, name: string): Float32Array => weights[name] as Float32Array;

/** Each modality's encoder: the member's columns beside the others' over the same inputs. */
function placeEncoders(member: Model, at: Placement, config: ModelConfig, out: Weights): void {
  for (const m of FEATURE_MODALITIES) {
    const units = member.config.encoderUnits[m];
    if (units === 0) continue;
    const kernel = weight(member.weights, encoderKernelName(m));
    const merged = weight(out, encoderKernelName(m));
    for (let i = 0; i < member.config.inputLayout[m]; i++)
      merged.set(kernel.subarray(i * units, (i + 1) * units), i * config.encoderUnits[m] + at.encoder[m]);
    weight(out, encoderBiasName(m)).set(weight(member.weights, encoderBiasName(m)), at.encoder[m]);
  }
}

/**
 * The cell: each of the member's gate blocks (z, r, h or i, f, c, o) at its own units' columns of that gate, its rows
 * at its encoder outputs, the shared mask and its own state; everything outside its blocks stays zero.
 */
function placeCell(member: Model, at: Placement, dims: ModelDims, out: Weights): void {
  const md = modelDims(member.config);
  const memberMask = md.cellInput - 3;
  const inputRow = (row: number): number => {
    if (row >= memberMask) return dims.cellInput - 3 + (row - memberMask);
    const m = encoderModalityAt(md, row);
    return dims.encoderOffset[m] + at.encoder[m] + (row - md.encoderOffset[m]);
  };
  const column = (col: number): number =>
    Math.floor(col / md.hidden) * dims.hidden + at.hidden + (col % md.hidden);
  const place = (name: string, rows: number, toRow: (r: number) => number): void => {
    const src = weight(member.weights, name);
    const dst = weight(out, name);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < md.gates; c++)
        dst[toRow(r) * dims.gates + column(c)] = src[r * md.gates + c] as number;
  };
  place('cell/kernel', md.cellInput, inputRow);
  place('cell/recurrent_kernel', md.hidden, (r) => at.hidden + r);
  // One bias row, or Keras reset_after's two (input, then recurrent): each copied to the same row.
  place('cell/bias', weight(member.weights, 'cell/bias').length / md.gates, (r) => r);
}

/** The head: the member's rows at its hidden units, scaled so the logits add up to the members' mean. */
function placeHead(member: Model, at: Placement, count: number, dims: ModelDims, out: Weights): void {
  const head = weight(member.weights, 'head/kernel');
  const bias = weight(member.weights, 'head/bias');
  const L = dims.labels;
  for (let r = 0; r < member.config.hidden; r++)
    for (let l = 0; l < L; l++)
      weight(out, 'head/kernel')[(at.hidden + r) * L + l] = (head[r * L + l] as number) / count;
  for (let l = 0; l < L; l++)
    weight(out, 'head/bias')[l] = (weight(out, 'head/bias')[l] as number) + (bias[l] as number) / count;
}

/**
 * One model that is the ensemble of `members`: its logits are the mean of theirs (to float rounding), step after step.
 * The members sit side by side in one wider model: each modality's encoder concatenates theirs, the cell's hidden
 * state is theirs concatenated with every gate's kernel block-diagonal (a member's units read only its own encoder
 * outputs, the shared presence mask and its own state), and the head is theirs stacked, divided by the member count.
 * So the ensemble runs on every backend unchanged, as one batched step instead of one per member; the price is the
 * zeros of the off-diagonal blocks, which the dense kernels multiply.
 *
 * Averaging logits rather than probabilities (a sigmoid of the mean rather than a mean of sigmoids) is what a single
 * head can compute; it is the geometric mean of the members' odds. Members need per-modality encoders (what braid
 * train builds), not an imported fused encoder.
 */
export function ensembleModels(members: readonly Model[]): Model {
  checkMembers(members);
  const config = mergedConfig(members);
  const dims = modelDims(config);
  const weights: Weights = {};
  for (const spec of weightSpecs(config))
    weights[spec.name] = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
  placements(members).forEach((at, k) => {
    const member = members[k] as Model;
    placeEncoders(member, at, config, weights);
    placeCell(member, at, dims, weights);
    placeHead(member, at, members.length, dims, weights);
  });
  return createModel(config, weights);
}
