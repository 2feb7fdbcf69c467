import { z } from 'zod';
import { BraidError } from '../core/errors.js';

/** The modalities that carry features into the model, in the order their slices appear in the fused input. */
export const FEATURE_MODALITIES = ['audio', 'video', 'text'] as const;
export type FeatureModality = (typeof FEATURE_MODALITIES)[number];

/** Width of each slice of the fused input x = [audio | video | text | presence mask (audio, video, text)]. */
export interface InputLayout {
  readonly audio: number;
  readonly video: number;
  readonly text: number;
  readonly mask: 3;
}

export type CellType = 'gru' | 'lstm';
export type HeadType = 'sigmoid' | 'softmax';

/** Activations a dense layer of {@link ModelConfig.fusedEncoder} may have: the ones every kernel computes. */
export const DENSE_ACTIVATIONS = ['linear', 'relu', 'tanh', 'sigmoid'] as const;
export type DenseActivation = (typeof DENSE_ACTIVATIONS)[number];

export interface DenseLayerConfig {
  readonly units: number;
  readonly activation: DenseActivation;
}

/**
 * Everything needed to rebuild the model apart from its weights; saved as JSON next to them. `featureConfig` is
 * owned by the features stage and kept opaque here: it is only stored, handed back and compared.
 */
export interface ModelConfig {
  readonly inputLayout: InputLayout;
  /** Units of the dense ReLU encoder of each modality; 0 exactly when that modality's slice is empty. */
  readonly encoderUnits: Readonly<Record<FeatureModality, number>>;
  /**
   * Dense layers over the whole normalized fused input, mask included, in place of the per-modality encoders: the
   * shape of a Keras `Sequential` model (`braid import`). Absent: per-modality encoders (what `braid train` builds);
   * `[]`: the cell reads the normalized input itself. When present, every `encoderUnits` entry is 0.
   */
  readonly fusedEncoder?: readonly DenseLayerConfig[];
  readonly hidden: number;
  readonly cell: CellType;
  /**
   * GRU only, Keras' `reset_after`: true (the default, braid's own models) applies the reset gate after the recurrent
   * product, r ⊙ (h U_h + b_h), with a bias [2, 3H]; false applies it before, (r ⊙ h) U_h, with a bias [3H].
   */
  readonly resetAfter?: boolean;
  readonly labels: readonly string[];
  readonly head: HeadType;
  readonly featureConfig: unknown;
  /** The event-time windowing the model was trained with (owned by src/pipeline, opaque here); absent in older models. */
  readonly windowing?: unknown;
  /** Per fused-input dimension (mask included): x' = (x - mean) / std, applied before the encoders. */
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

/** Sizes derived from a config that the kernels index with. */
export interface ModelDims {
  /** Fused input width F = audio + video + text + 3. */
  readonly input: number;
  /** Offset of each modality's slice in the fused input; the mask starts at `maskOffset`. */
  readonly inputOffset: Readonly<Record<FeatureModality, number>>;
  readonly maskOffset: number;
  /** Offset of each encoder's output in the cell input. */
  readonly encoderOffset: Readonly<Record<FeatureModality, number>>;
  /**
   * Cell input width: encoder units of all modalities + 3 mask entries; with a fused encoder, its last layer's units
   * (the fused input width F when it has no layers).
   */
  readonly cellInput: number;
  readonly hidden: number;
  /** Gate columns: 3H for a GRU (z, r, h), 4H for an LSTM (i, f, c, o). */
  readonly gates: number;
  /** Recurrent state floats per stream: h for a GRU, h then c for an LSTM. */
  readonly state: number;
  readonly labels: number;
}

const MAX_DIM = 1 << 16;
const dim = z.number().int().min(0).max(MAX_DIM);
/** More dense layers than this before the cell is not a recurrent model any more; the GPU kernel also sizes by it. */
export const MAX_FUSED_ENCODER_LAYERS = 8;

const configSchema = z
  .object({
    inputLayout: z.object({ audio: dim, video: dim, text: dim, mask: z.literal(3) }),
    encoderUnits: z.object({ audio: dim, video: dim, text: dim }),
    fusedEncoder: z
      .array(z.object({ units: dim.min(1), activation: z.enum(DENSE_ACTIVATIONS) }))
      .max(MAX_FUSED_ENCODER_LAYERS)
      .optional(),
    hidden: z.number().int().min(1).max(8192),
    cell: z.enum(['gru', 'lstm']),
    resetAfter: z.boolean().optional(),
    labels: z.array(z.string().min(1)).min(1),
    head: z.enum(['sigmoid', 'softmax']),
    featureConfig: z.unknown(),
    windowing: z.unknown().optional(),
    normalization: z.object({
      mean: z.array(z.number().refine(Number.isFinite, 'must be finite')),
      std: z.array(z.number().refine((v) => Number.isFinite(v) && v > 0, 'must be finite and > 0')),
    }),
  })
  .superRefine((c, ctx) => {
    for (const m of FEATURE_MODALITIES)
      if (c.fusedEncoder !== undefined) {
        if (c.encoderUnits[m] !== 0)
          ctx.addIssue({
            code: 'custom',
            path: ['encoderUnits', m],
            message: `must be 0 when fusedEncoder replaces the per-modality encoders (got ${c.encoderUnits[m]})`,
          });
      } else if ((c.inputLayout[m] === 0) !== (c.encoderUnits[m] === 0))
        ctx.addIssue({
          code: 'custom',
          path: ['encoderUnits', m],
          message: `must be 0 exactly when inputLayout.${m} is 0 (got ${c.encoderUnits[m]} units for ${c.inputLayout[m]} inputs)`,
        });
    const width = c.inputLayout.audio + c.inputLayout.video + c.inputLayout.text + 3;
    for (const key of ['mean', 'std'] as const)
      if (c.normalization[key].length !== width)
        ctx.addIssue({
          code: 'custom',
          path: ['normalization', key],
          message: `needs one entry per fused input dimension (${width}), got ${c.normalization[key].length}`,
        });
    const seen = new Set<string>();
    for (const label of c.labels) {
      if (seen.has(label))
        ctx.addIssue({ code: 'custom', path: ['labels'], message: `duplicate label "${label}"` });
      seen.add(label);
    }
    if (c.head === 'softmax' && c.labels.length < 2)
      ctx.addIssue({ code: 'custom', path: ['labels'], message: 'a softmax head needs at least 2 labels' });
    if (c.resetAfter !== undefined && c.cell !== 'gru')
      ctx.addIssue({ code: 'custom', path: ['resetAfter'], message: 'applies to a GRU only' });
    if (c.featureConfig === undefined)
      ctx.addIssue({ code: 'custom', path: ['featureConfig'], message: 'is required (use null for none)' });
  });

/**
 * Checks a config read from disk or built by the trainer. Throws BraidError BRAID_ERR_MODEL naming every field that
 * is wrong, with what was expected.
 */
export function parseModelConfig(value: unknown): ModelConfig {
  const result = configSchema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new BraidError('BRAID_ERR_MODEL', `invalid model config: ${issues.join('; ')}`);
  }
  return result.data as ModelConfig;
}

export function modelDims(config: ModelConfig): ModelDims {
  const { inputLayout: layout, encoderUnits: units } = config;
  const inputOffset = { audio: 0, video: layout.audio, text: layout.audio + layout.video };
  const encoderOffset = { audio: 0, video: units.audio, text: units.audio + units.video };
  const encoded = units.audio + units.video + units.text;
  const input = layout.audio + layout.video + layout.text + 3;
  const fused = config.fusedEncoder;
  const cellInput = fused === undefined ? encoded + 3 : (fused[fused.length - 1]?.units ?? input);
  const gates = config.cell === 'gru' ? 3 * config.hidden : 4 * config.hidden;
  return {
    input,
    inputOffset,
    maskOffset: layout.audio + layout.video + layout.text,
    encoderOffset,
    cellInput,
    hidden: config.hidden,
    gates,
    state: config.cell === 'gru' ? config.hidden : 2 * config.hidden,
    labels: config.labels.length,
  };
}

/** The modality whose encoder writes row `row` of the cell input (a row before the mask, per-modality encoders). */
export function encoderModalityAt(dims: ModelDims, row: number): FeatureModality {
  // Last first: a modality without units starts where the next one does, and the next one owns that row.
  for (const m of [...FEATURE_MODALITIES].reverse()) if (row >= dims.encoderOffset[m]) return m;
  throw new RangeError(`cell input row ${row} is not an encoder output`);
}

/** Whether a GRU applies its reset gate after the recurrent product (Keras' reset_after; braid's default). */
export const gruResetsAfter = (config: ModelConfig): boolean => config.resetAfter !== false;

/** Identity normalization for a layout: mean 0, std 1 everywhere (tests, fresh models before training). */
export function identityNormalization(layout: InputLayout): ModelConfig['normalization'] {
  const width = layout.audio + layout.video + layout.text + 3;
  return { mean: new Array<number>(width).fill(0), std: new Array<number>(width).fill(1) };
}
