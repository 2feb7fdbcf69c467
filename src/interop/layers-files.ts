import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { z } from 'zod';
import { InteropError } from './errors.js';

/** One weight of a layers model, decoded to float32 (quantized and integer weights included), row-major. */
export interface LayersWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

/**
 * A model in the TensorFlow.js layers format (model.json + weight shards): what tensorflowjs_converter writes from a
 * Keras model and what tf.LayersModel.save writes.
 */
export interface LayersModelFiles {
  readonly file: string;
  /** `modelTopology` as found: a Keras model config, possibly inside `model_config`. */
  readonly topology: unknown;
  readonly weights: readonly LayersWeight[];
  readonly generatedBy?: string;
  readonly convertedBy?: string;
  readonly userDefinedMetadata?: Readonly<Record<string, unknown>>;
}

const manifestSchema = z.array(
  z.object({
    paths: z.array(z.string()).min(1),
    weights: z.array(
      z.object({ name: z.string(), shape: z.array(z.number().int().min(0)), dtype: z.string() }).loose(),
    ),
  }),
);

const modelJsonSchema = z
  .object({
    format: z.string().optional(),
    generatedBy: z.string().nullish(),
    convertedBy: z.string().nullish(),
    modelTopology: z.record(z.string(), z.unknown()),
    weightsManifest: manifestSchema,
    userDefinedMetadata: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();

const badFile = (message: string, cause?: unknown): InteropError =>
  new InteropError('bad_file', message, undefined, cause === undefined ? undefined : { cause });

async function readShards(file: string, manifest: z.infer<typeof manifestSchema>): Promise<ArrayBuffer> {
  const dir = path.dirname(path.resolve(file));
  const buffers: ArrayBuffer[] = [];
  for (const group of manifest)
    for (const name of group.paths) {
      const shard = path.resolve(dir, name);
      if (path.dirname(shard) !== dir)
        throw badFile(`weights path "${name}" in ${file} leaves the model's directory`);
      let bytes: Buffer;
      try {
        bytes = await readFile(shard);
      } catch (error) {
        throw badFile(
          `cannot read weight shard ${shard} (listed in ${file}): ${(error as Error).message}`,
          error,
        );
      }
      buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    }
  return tf.io.concatenateArrayBuffers(buffers);
}

/**
 * Reads model.json and its weight shards (paths relative to model.json, never outside its directory). Weights go
 * through tfjs' own decoder, so quantized (uint8/uint16/float16) and integer weights arrive as float32. Throws
 * InteropError `bad_file` naming the file for anything unreadable or inconsistent.
 */
export async function readLayersModel(file: string): Promise<LayersModelFiles> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw badFile(`cannot read ${file}: ${(error as Error).message}`, error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw badFile(`${file} is not valid JSON: ${(error as Error).message}`, error);
  }
  const parsed = modelJsonSchema.safeParse(json);
  if (!parsed.success)
    throw badFile(
      `${file} is not a TensorFlow.js layers model (model.json with modelTopology and weightsManifest): ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  const model = parsed.data;
  if (model.format !== undefined && model.format !== 'layers-model')
    throw badFile(
      `${file} has format "${model.format}"; braid import reads the layers format ("layers-model"), which tensorflowjs_converter writes with --output_format tfjs_layers_model`,
    );
  const specs = model.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[];
  const data = await readShards(file, model.weightsManifest);
  let tensors: tf.NamedTensorMap;
  try {
    tensors = tf.io.decodeWeights(data, specs);
  } catch (error) {
    throw badFile(`the weights of ${file} do not decode: ${(error as Error).message}`, error);
  }
  const weights: LayersWeight[] = [];
  for (const spec of specs) {
    const t = tensors[spec.name] as tf.Tensor;
    weights.push({ name: spec.name, shape: t.shape, values: new Float32Array(t.dataSync()) });
    t.dispose();
  }
  return {
    file,
    topology: model.modelTopology,
    weights,
    ...(model.generatedBy ? { generatedBy: model.generatedBy } : {}),
    ...(model.convertedBy ? { convertedBy: model.convertedBy } : {}),
    ...(model.userDefinedMetadata ? { userDefinedMetadata: model.userDefinedMetadata } : {}),
  };
}

/** The one weight shard written next to `file`: model.json → model.weights.bin, so two exports in a folder never clash. */
export const shardName = (file: string): string =>
  `${path.basename(file).replace(/\.json$/i, '')}.weights.bin`;

export interface LayersModelToWrite {
  readonly topology: Record<string, unknown>;
  readonly weights: readonly LayersWeight[];
  readonly userDefinedMetadata?: Record<string, unknown>;
}

/**
 * Writes model.json at `file` and its one weight shard next to it, float32, each renamed into place from a temporary
 * name (shard first, so a reader never finds a model.json pointing to a missing or older shard).
 */
export async function writeLayersModel(file: string, model: LayersModelToWrite): Promise<void> {
  const tensors = model.weights.map((w) => ({
    name: w.name,
    tensor: tf.tensor(w.values, [...w.shape], 'float32'),
  }));
  let encoded: { data: ArrayBuffer; specs: tf.io.WeightsManifestEntry[] };
  try {
    encoded = await tf.io.encodeWeights(tensors);
  } finally {
    tf.dispose(tensors.map((t) => t.tensor));
  }
  const json = {
    format: 'layers-model',
    generatedBy: 'braid export-model',
    convertedBy: null,
    modelTopology: model.topology,
    weightsManifest: [{ paths: [shardName(file)], weights: encoded.specs }],
    ...(model.userDefinedMetadata ? { userDefinedMetadata: model.userDefinedMetadata } : {}),
  };
  const dir = path.dirname(path.resolve(file));
  await mkdir(dir, { recursive: true });
  const atomically = async (target: string, data: string | Uint8Array): Promise<void> => {
    const tmp = `${target}.${process.pid}.tmp`;
    await writeFile(tmp, data);
    await rename(tmp, target);
  };
  await atomically(path.join(dir, shardName(file)), new Uint8Array(encoded.data));
  await atomically(path.resolve(file), `${JSON.stringify(json, null, 2)}\n`);
}
