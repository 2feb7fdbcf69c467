import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { z } from 'zod';
import { BraidError } from '../core/errors.js';
import { jsonDifferences as diffJson } from '../core/json-diff.js';
import { type InputLayout, type ModelConfig, parseModelConfig } from './config.js';
import { createModel, type Model, weightSpecs } from './weights.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const MODEL_FORMAT = 'braid-model';

/**
 * model.json follows TensorFlow.js' layout (modelTopology, weightsManifest, format), with the braid config as the
 * topology; weights.bin is the tfjs weight encoding of the tensors named in weights.ts. `weightsSha256` (braid's
 * addition) ties the two files together: each is renamed into place on its own, so a crash between the renames, a
 * weights.bin copied from another model or a corrupt one would otherwise load silently.
 */
const modelJsonSchema = z.object({
  format: z.literal(MODEL_FORMAT),
  weightsSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits')
    .optional(),
  modelTopology: z.record(z.string(), z.unknown()),
  weightsManifest: z
    .array(
      z.object({
        paths: z.array(z.string()).min(1),
        weights: z.array(
          z.object({ name: z.string(), shape: z.array(z.number().int().min(0)), dtype: z.string() }).loose(),
        ),
      }),
    )
    .min(1),
});

const modelError = (message: string, cause?: unknown): BraidError =>
  new BraidError('BRAID_ERR_MODEL', message, cause === undefined ? undefined : { cause });

const errnoCode = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code;

/** Writes to a temporary name then renames, so a crash never leaves half a model behind a valid name. */
async function writeAtomically(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/** A tfjs IOHandler saving to and loading from a directory with node:fs (tfjs-node's file:// handler is absent). */
export function directoryHandler(dir: string): tf.io.IOHandler {
  const saver = tf.io.withSaveHandler(async (artifacts) => {
    if (!artifacts.weightSpecs || !artifacts.weightData || !artifacts.modelTopology)
      throw modelError('saving a model needs its topology, weight specs and weight data');
    const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
    const modelJson: tf.io.ModelJSON & { weightsSha256: string } = {
      format: artifacts.format ?? MODEL_FORMAT,
      weightsSha256: sha256(data),
      generatedBy: artifacts.generatedBy ?? 'braid',
      convertedBy: null,
      modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
      weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs }],
    };
    await mkdir(dir, { recursive: true });
    // Weights first: until model.json (with their hash) replaces the old one, a load sees a mismatch, never a mix.
    await writeAtomically(path.join(dir, WEIGHTS_BIN), data);
    await writeAtomically(path.join(dir, MODEL_JSON), `${JSON.stringify(modelJson, null, 2)}\n`);
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
  });
  return { save: saver.save?.bind(saver), load: async () => (await loadArtifacts(dir)).artifacts };
}

/**
 * A short, stable name for a saved model: its directory's name and the first 12 hex digits of its weights' sha256
 * (e.g. `demo@3f2a9c01b7e4`), so clients can tell which model answered them.
 */
export async function modelId(dir: string): Promise<string> {
  const json = await readModelJson(dir);
  const hash = json.weightsSha256;
  return `${path.basename(path.resolve(dir))}${hash ? `@${hash.slice(0, 12)}` : ''}`;
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

type SavedModelJson = tf.io.ModelJSON & { readonly weightsSha256?: string };

async function readModelJson(dir: string): Promise<SavedModelJson> {
  try {
    const info = await stat(dir);
    if (!info.isDirectory()) throw modelError(`model path "${dir}" is not a directory`);
  } catch (error) {
    if (error instanceof BraidError) throw error;
    throw modelError(`model directory "${dir}" does not exist`, error);
  }
  const file = path.join(dir, MODEL_JSON);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw modelError(
      errnoCode(error) === 'ENOENT'
        ? `model directory "${dir}" has no ${MODEL_JSON}`
        : `cannot read ${file}: ${(error as Error).message}`,
      error,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw modelError(`${file} is not valid JSON: ${(error as Error).message}`, error);
  }
  const parsed = modelJsonSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw modelError(`${file} is not a braid model: ${issues.join('; ')}`);
  }
  return parsed.data as unknown as SavedModelJson;
}

async function readWeightFiles(dir: string, manifest: tf.io.WeightsManifestConfig): Promise<ArrayBuffer> {
  const buffers: ArrayBuffer[] = [];
  for (const group of manifest)
    for (const name of group.paths) {
      const file = path.resolve(dir, name);
      if (path.dirname(file) !== path.resolve(dir))
        throw modelError(`weights path "${name}" in ${MODEL_JSON} leaves the model directory`);
      try {
        const bytes = await readFile(file);
        buffers.push(
          bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
        );
      } catch (error) {
        throw modelError(
          errnoCode(error) === 'ENOENT'
            ? `model directory "${dir}" has no ${name} (listed in ${MODEL_JSON})`
            : `cannot read ${file}: ${(error as Error).message}`,
          error,
        );
      }
    }
  return tf.io.concatenateArrayBuffers(buffers);
}

async function loadArtifacts(
  dir: string,
): Promise<{ artifacts: tf.io.ModelArtifacts; weightsSha256: string | undefined }> {
  const modelJson = await readModelJson(dir);
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
    const specs = manifest.flatMap((g) => g.weights);
    return [specs, await readWeightFiles(dir, manifest)];
  });
  return { artifacts, weightsSha256: modelJson.weightsSha256 };
}

/** Checks the weights against the hash model.json was saved with (models saved before the hash existed have none). */
function checkWeightsHash(artifacts: tf.io.ModelArtifacts, expected: string | undefined, dir: string): void {
  if (expected === undefined) return;
  const actual = sha256(new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? [])));
  if (actual !== expected)
    throw modelError(
      `${WEIGHTS_BIN} in "${dir}" is not the one ${MODEL_JSON} was saved with (sha256 ${actual}, expected ${expected}): it is corrupt, or the two files come from different saves`,
    );
}

/** Saves config (normalization and feature config included) and weights to `dir` (created if needed). */
export async function saveModel(model: Model, dir: string): Promise<void> {
  const tensors = weightSpecs(model.config).map((spec) => ({
    name: spec.name,
    tensor: tf.tensor(model.weights[spec.name] as Float32Array, [...spec.shape], 'float32'),
  }));
  try {
    const { data, specs } = await tf.io.encodeWeights(tensors);
    await directoryHandler(dir).save?.({
      modelTopology: model.config as unknown as tf.io.ModelJSON['modelTopology'],
      format: MODEL_FORMAT,
      generatedBy: 'braid',
      weightSpecs: specs,
      weightData: data,
    });
  } finally {
    tf.dispose(tensors.map((t) => t.tensor));
  }
}

function decodeWeights(
  artifacts: tf.io.ModelArtifacts,
  config: ModelConfig,
  dir: string,
): Record<string, Float32Array> {
  const specs = artifacts.weightSpecs ?? [];
  const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? []);
  const expected = new Map(weightSpecs(config).map((s) => [s.name, s.shape]));
  let bytes = 0;
  for (const spec of specs) {
    if (spec.dtype !== 'float32' || spec.quantization)
      throw modelError(
        `weight ${spec.name} in "${dir}" is ${spec.dtype}${spec.quantization ? ' quantized' : ''}; only float32 is supported`,
      );
    const want = expected.get(spec.name);
    if (want && want.join(',') !== spec.shape.join(','))
      throw modelError(
        `weight ${spec.name} in "${dir}" has shape [${spec.shape.join(', ')}], the config needs [${want.join(', ')}]`,
      );
    bytes += spec.shape.reduce((a, b) => a * b, 1) * 4;
  }
  if (bytes !== data.byteLength)
    throw modelError(`weights of "${dir}" hold ${data.byteLength} bytes, the manifest describes ${bytes}`);
  const tensors = tf.io.decodeWeights(data, specs);
  const out: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(tensors)) {
    out[name] = new Float32Array(t.dataSync());
    t.dispose();
  }
  return out;
}

/** What the running pipeline feeds the model: checked against a loaded model's saved config. */
export interface ExpectedFeatures {
  readonly featureConfig: unknown;
  readonly inputLayout: InputLayout;
}

/** Differences between two JSON values, as `path: model has A, pipeline expects B` (at most `limit`). */
export function jsonDifferences(model: unknown, expected: unknown, at: string, limit = 10): string[] {
  return diffJson(model, expected, at, limit).map(
    (d) => `${d.path}: model has ${d.left}, pipeline expects ${d.right}`,
  );
}

/** Throws BraidError BRAID_ERR_FEATURE_MISMATCH naming each difference between the model's features and the pipeline's. */
export function checkFeatures(config: ModelConfig, expected: ExpectedFeatures): void {
  const diffs = [
    ...jsonDifferences(config.inputLayout, expected.inputLayout, 'inputLayout'),
    ...jsonDifferences(config.featureConfig, expected.featureConfig, 'featureConfig'),
  ];
  if (diffs.length > 0)
    throw new BraidError(
      'BRAID_ERR_FEATURE_MISMATCH',
      `the model was trained on other features than this pipeline produces: ${diffs.join('; ')}`,
    );
}

/**
 * Loads a model saved by {@link saveModel}. Throws BRAID_ERR_MODEL for a missing directory or file, corrupt JSON,
 * an invalid config, weights that do not fit it or that are not the ones model.json was saved with (sha256), and BRAID_ERR_FEATURE_MISMATCH when `expected` is given and the
 * model's feature config or input layout differ from it.
 */
export async function loadModel(dir: string, expected?: ExpectedFeatures): Promise<Model> {
  const { artifacts, weightsSha256 } = await loadArtifacts(dir);
  let config: ModelConfig;
  try {
    config = parseModelConfig(artifacts.modelTopology);
  } catch (error) {
    throw modelError(`${path.join(dir, MODEL_JSON)}: ${(error as Error).message}`, error);
  }
  if (expected) checkFeatures(config, expected);
  const weights = decodeWeights(artifacts, config, dir);
  checkWeightsHash(artifacts, weightsSha256, dir);
  return createModel(config, weights);
}
