import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import { parseDuration } from '../core/time.js';
import { parseBackendName } from '../model/backends.js';
import { loadModel, modelId } from '../model/model-io.js';
import { PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';

/** The model and recording shipped with braid, used when no --model / recording is named. */
export const BUNDLED_MODEL = fileURLToPath(new URL('../../models/demo', import.meta.url));
export const BUNDLED_RECORDING = fileURLToPath(new URL('../../streams/demo.mcap', import.meta.url));

export interface ModelCliOptions {
  model: string;
  backend: string;
  gpuStreams?: string;
}

/** Adds --model and --backend to a command. */
export function withModelOptions(command: Command, defaultBackend = 'auto'): Command {
  return command
    .option('--model <dir>', 'model directory (saved by braid train)', BUNDLED_MODEL)
    .option('--backend <name>', 'auto | cpu-fused | cpu | wasm | webgpu | tensorflow', defaultBackend)
    .option('--gpu-streams <n>', 'webgpu: streams whose state the GPU holds at once (default 10000)');
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
  const gpuStreams = options.gpuStreams === undefined ? undefined : Number(options.gpuStreams);
  if (gpuStreams !== undefined && !(Number.isInteger(gpuStreams) && gpuStreams >= 1))
    throw new InvalidOptionError('gpu-streams', `must be a positive integer, got "${options.gpuStreams}"`);
  const model = await loadModel(options.model);
  return PredictionPipelineRunner.create({
    model,
    modelId: await modelId(options.model),
    backend,
    log,
    maxQueue,
    gpuStreams,
  });
}

export function durationOption(value: string): number {
  return parseDuration(value);
}

/** A whole number ≥ 1 from the command line; anything else is a usage error naming the text. */
export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a whole number ≥ 1, got "${value}"`);
  return n;
}
