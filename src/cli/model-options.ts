import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { parseDuration } from '../core/time.js';
import { readModelEvents } from '../events/model-events.js';
import {
  type LabelEventSettings,
  type PartialEventSettings,
  parseEventsOption,
  resolveEventSettings,
} from '../events/settings.js';
import { parseBackendName } from '../model/backends.js';
import { loadModel, MODEL_JSON, modelId } from '../model/model-io.js';
import { type PipelineOptions, PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';

/** The model and recording shipped with braid, used when no --model / recording is named. */
export const BUNDLED_MODEL = fileURLToPath(new URL('../../models/demo', import.meta.url));
export const BUNDLED_RECORDING = fileURLToPath(new URL('../../streams/demo.mcap', import.meta.url));

export interface ModelCliOptions {
  model: string;
  backend: string;
  gpuStreams?: string;
  /** --events, where the command has it. */
  events?: Record<string, PartialEventSettings>;
}

/** Adds --model and --backend to a command. */
export function withModelOptions(command: Command, defaultBackend = 'auto'): Command {
  return command
    .option('--model <dir>', 'model directory (saved by braid train)', BUNDLED_MODEL)
    .option('--backend <name>', 'auto | cpu-fused | cpu | wasm | webgpu | tensorflow', defaultBackend)
    .option('--gpu-streams <n>', 'webgpu: streams whose state the GPU holds at once (default 10000)');
}

/** `--gpu-streams` as a number (undefined: the backend's default), refused unless a positive integer. */
export function gpuStreamsOf(options: ModelCliOptions): number | undefined {
  const gpuStreams = options.gpuStreams === undefined ? undefined : Number(options.gpuStreams);
  if (gpuStreams !== undefined && !(Number.isInteger(gpuStreams) && gpuStreams >= 1))
    throw new InvalidOptionError('gpu-streams', `must be a positive integer, got "${options.gpuStreams}"`);
  return gpuStreams;
}

/** Loads the model and builds the live pipeline; logs which backend runs the model and why. */
export async function createPipelineFromOptions(
  options: ModelCliOptions,
  log: Logger,
  maxQueue?: number,
  extra: Pick<PipelineOptions, 'windowing'> = {},
): Promise<PredictionPipelineRunner> {
  if (!existsSync(options.model))
    throw new InvalidOptionError(
      'model',
      `no model directory at ${options.model} (train one with braid train)`,
    );
  if (!existsSync(join(options.model, MODEL_JSON)))
    throw new InvalidOptionError(
      'model',
      `${options.model} is not a model directory: it has no ${MODEL_JSON} (train one with braid train)`,
    );
  const backend = options.backend === 'auto' ? 'auto' : parseBackendName(options.backend);
  const gpuStreams = gpuStreamsOf(options);
  const model = await loadModel(options.model);
  return PredictionPipelineRunner.create({
    model,
    modelId: await modelId(options.model),
    backend,
    log,
    maxQueue,
    gpuStreams,
    ...extra,
  });
}

/** Adds --events LABEL:on=..,off=..,min-on=..,min-off=.. (repeatable) to a command. */
export function withEventsOption(command: Command): Command {
  return command.option(
    '--events <label:settings>',
    "event thresholds of a label, over the model's events.json: LABEL:on=0.7,off=0.3,min-on=300ms,min-off=500ms (repeatable)",
    (value: string, previous: Record<string, PartialEventSettings> = {}) =>
      parseEventsOption(value, previous),
  );
}

/** The event settings of the model's labels: defaults, the model directory's events.json, then --events. */
export async function eventSettingsFromOptions(
  modelDir: string,
  labels: readonly string[],
  overrides?: Record<string, PartialEventSettings>,
): Promise<LabelEventSettings> {
  return resolveEventSettings(labels, await readModelEvents(modelDir), overrides);
}

export function durationOption(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    // A usage error (exit 2, commander names the option), not a runtime failure.
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

/** A duration > 0 (how long to capture). */
export function positiveDurationOption(value: string): number {
  const micros = durationOption(value);
  if (micros <= 0) throw new InvalidArgumentError(`expected a duration > 0, got "${value}"`);
  return micros;
}

/** A TCP port (0 picks a free one). */
export function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError(`expected a port number 0..65535, got "${value}"`);
  return n;
}

/** A number > 0 (a speed, a factor). */
export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`expected a number > 0, got "${value}"`);
  return n;
}

/** A secret from a file (its first line, trimmed): kept out of `ps` and of the environment. */
export function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new InvalidOptionError('token-file', `cannot read ${file}: ${(error as Error).message}`);
  }
  const token = text.split(/\r?\n/)[0]!.trim();
  if (token.length === 0) throw new InvalidOptionError('token-file', `${file} holds no token`);
  return token;
}

/** A whole number ≥ 1 from the command line; anything else is a usage error naming the text. */
export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a whole number ≥ 1, got "${value}"`);
  return n;
}
