import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import { parseDuration } from '../core/time.js';
import { parseBackendName } from '../model/backends.js';
import { loadModel, MODEL_JSON } from '../model/model-io.js';
import { PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';

/** The model and recording shipped with braid, used when no --model / recording is named. */
export const BUNDLED_MODEL = fileURLToPath(new URL('../../models/demo', import.meta.url));
export const BUNDLED_RECORDING = fileURLToPath(new URL('../../streams/demo.mcap', import.meta.url));

export interface ModelCliOptions {
  model: string;
  backend: string;
}

/** Adds --model and --backend to a command. */
export function withModelOptions(command: Command, defaultBackend = 'auto'): Command {
  return command
    .option('--model <dir>', 'model directory (saved by braid train)', BUNDLED_MODEL)
    .option('--backend <name>', 'auto | cpu-fused | cpu | wasm | webgpu | tensorflow', defaultBackend);
}

/** Loads the model and builds the live pipeline; logs which backend runs the model and why. */
export async function createPipelineFromOptions(
  options: ModelCliOptions,
  log: (line: string) => void,
  maxQueue?: number,
): Promise<PredictionPipelineRunner> {
  if (!existsSync(options.model))
    throw new InvalidOptionError(
      'model',
      `no model directory at ${options.model} (train one with braid train)`,
    );
  const backend = options.backend === 'auto' ? 'auto' : parseBackendName(options.backend);
  const model = await loadModel(options.model);
  return PredictionPipelineRunner.create({ model, backend, log, maxQueue });
}

export function durationOption(value: string): number {
  return parseDuration(value);
}

/**
 * A model's id for recorded predictions: its directory's name and the first 12 hex digits of the sha256 of its
 * model.json (which holds the config, the windowing and the weights' own sha256), e.g. `demo@1a2b3c4d5e6f`. Two
 * models with the same id made the same predictions from the same inputs.
 */
export async function modelId(dir: string): Promise<string> {
  const json = await readFile(join(dir, MODEL_JSON));
  return `${basename(resolve(dir))}@${createHash('sha256').update(json).digest('hex').slice(0, 12)}`;
}
