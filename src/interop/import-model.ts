import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { jsonDifferences } from '../core/json-diff.js';
import { featureLayout, parseFeatureConfig } from '../features/config.js';
import { saveModel } from '../model/model-io.js';
import type { Model } from '../model/weights.js';
import { BASELINE_DIR } from '../train/baseline.js';
import { TRAINING_REPORT } from '../train/evaluate.js';
import { InteropError } from './errors.js';
import { BRAID_METADATA_KEY } from './keras-export.js';
import { type ImportFeatures, importKerasModel, type LayerMapping } from './keras-import.js';
import { readLayersModel } from './layers-files.js';
import { liveWindowing, windowingJson } from './windowing.js';
import { readWindowsMeta } from './windows-meta.js';

export const IMPORT_REPORT = 'import-report.json';

export interface ImportOptions {
  /** A `braid export` .npz: the features, layout, labels and windowing the model was trained on. */
  readonly featuresFrom?: string;
  /** Label names for the head's outputs, in order, instead of the export's. */
  readonly labels?: readonly string[];
}

/** What `braid import` did, saved as import-report.json next to the model. */
export interface ImportReport {
  readonly source: string;
  readonly generatedBy?: string;
  readonly convertedBy?: string;
  /** Where the features, labels and windowing came from: the .npz, or the braid metadata of an exported model. */
  readonly featuresFrom: string;
  readonly labels: readonly string[];
  readonly windowing: Record<string, unknown>;
  readonly layers: readonly LayerMapping[];
}

const metadataSchema = z
  .object({
    format: z.literal('braid-keras-export'),
    inputLayout: z.object({ audio: z.number(), video: z.number(), text: z.number(), mask: z.literal(3) }),
    featureConfig: z.unknown(),
    windowing: z.unknown().optional(),
    labels: z.array(z.string()),
    normalization: z.object({ mean: z.array(z.number()), std: z.array(z.number()) }),
  })
  .loose();

type BraidMetadata = z.infer<typeof metadataSchema>;

function braidMetadata(
  file: string,
  metadata: Readonly<Record<string, unknown>> | undefined,
): BraidMetadata | undefined {
  const value = metadata?.[BRAID_METADATA_KEY];
  if (value === undefined) return undefined;
  const parsed = metadataSchema.safeParse(value);
  if (!parsed.success)
    throw new InteropError(
      'bad_file',
      `${file}: userDefinedMetadata.${BRAID_METADATA_KEY} is not braid export metadata: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}

function featuresFromMetadata(file: string, meta: BraidMetadata): ImportFeatures {
  try {
    const featureConfig = parseFeatureConfig(meta.featureConfig, 'featureConfig');
    const layout = featureLayout(featureConfig);
    const inputLayout = { audio: layout.audio, video: layout.video, text: layout.text, mask: 3 } as const;
    const diffs = jsonDifferences(meta.inputLayout, inputLayout, 'inputLayout');
    if (diffs.length > 0)
      throw new Error(
        `its layout does not follow its feature config (${diffs.map((d) => d.path).join(', ')})`,
      );
    return { featureConfig, inputLayout, labels: meta.labels, windowing: liveWindowing(meta.windowing) };
  } catch (error) {
    throw new InteropError('bad_file', `${file}: braid metadata: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  }
}

/**
 * `braid import`: reads a Keras model in the TensorFlow.js layers format, takes its features, layout, labels and
 * windowing from a `braid export` .npz (or from the braid metadata a `braid export-model` file carries), maps it
 * onto braid's model (keras-import.ts) and returns it with the report. Refuses, naming both, an .npz whose
 * features differ from the ones an exported braid model was trained on.
 */
export async function importModel(
  modelJson: string,
  options: ImportOptions = {},
): Promise<{ model: Model; report: ImportReport }> {
  const files = await readLayersModel(modelJson);
  const metadata = braidMetadata(modelJson, files.userDefinedMetadata);
  let features: ImportFeatures;
  let featuresFrom: string;
  if (options.featuresFrom !== undefined) {
    const meta = await readWindowsMeta(options.featuresFrom);
    features = meta;
    featuresFrom = options.featuresFrom;
    if (metadata) {
      const own = featuresFromMetadata(modelJson, metadata);
      const diffs = [
        ...jsonDifferences(own.featureConfig, meta.featureConfig, 'featureConfig'),
        ...jsonDifferences(own.inputLayout, meta.inputLayout, 'inputLayout'),
      ];
      if (diffs.length > 0)
        throw new InteropError(
          'shape_mismatch',
          `${modelJson} was exported from a braid model trained on other features than ${options.featuresFrom} holds: ${diffs.map((d) => `${d.path}: model ${d.left}, windows ${d.right}`).join('; ')}`,
        );
    }
  } else if (metadata) {
    features = featuresFromMetadata(modelJson, metadata);
    featuresFrom = `${modelJson} (braid metadata)`;
  } else
    throw new InteropError(
      'missing_metadata',
      `${modelJson} does not say which features it was trained on: pass --features-from with the windows.npz it was trained on (written by braid export)`,
    );
  if (options.labels) features = { ...features, labels: options.labels };
  const imported = importKerasModel(
    files,
    features,
    metadata ? { exactNormalization: metadata.normalization } : {},
  );
  const report: ImportReport = {
    source: path.resolve(modelJson),
    ...(files.generatedBy ? { generatedBy: files.generatedBy } : {}),
    ...(files.convertedBy ? { convertedBy: files.convertedBy } : {}),
    featuresFrom,
    labels: imported.model.config.labels,
    windowing: windowingJson(features.windowing),
    layers: imported.layers,
  };
  return { model: imported.model, report };
}

/** What `braid train` writes next to a model: it belongs to the model an import replaces (eval would read it). */
const TRAINED_ONLY = [BASELINE_DIR, TRAINING_REPORT];

/**
 * Saves an imported model as any braid model directory, with import-report.json beside it; a memoryless baseline
 * and training report left by a model this one replaces are removed.
 */
export async function saveImportedModel(model: Model, report: ImportReport, dir: string): Promise<void> {
  await saveModel(model, dir);
  for (const name of TRAINED_ONLY) await rm(path.join(dir, name), { recursive: true, force: true });
  await writeFile(path.join(dir, IMPORT_REPORT), `${JSON.stringify(report, null, 2)}\n`);
}
