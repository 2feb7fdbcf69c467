import { tf } from '../model/tfjs.js';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core's Node build registers no gradient functions (only the `@tensorflow/tfjs` union package does, through
// tfjs-layers); importing tfjs-layers registers them all in tfjs-core's shared registry, so tf.variableGrads works.
import '@tensorflow/tfjs-layers';
import { InvalidOptionError } from '../core/errors.js';
import { probeBackend } from '../model/backends.js';

export const TRAINING_BACKENDS = ['wasm', 'cpu'] as const;
export type TrainingBackend = (typeof TRAINING_BACKENDS)[number];

/**
 * Makes a tfjs backend with every kernel and gradient the trainer needs the active one: `wasm` (the default, about
 * four times faster on braid's small tensors) or the pure-JS `cpu`. Both run single-threaded and in a fixed order,
 * so a seed reproduces a run bit for bit on one machine; `cpu` is plain JavaScript arithmetic, the choice for
 * reproducing a run elsewhere.
 */
export async function useTrainingBackend(backend: TrainingBackend = 'wasm'): Promise<void> {
  if (!(TRAINING_BACKENDS as readonly string[]).includes(backend))
    throw new InvalidOptionError('backend', `must be ${TRAINING_BACKENDS.join(' or ')}, got "${backend}"`);
  if (tf.getBackend() === backend) return;
  const probe = await probeBackend(backend);
  if (!probe.available)
    throw new InvalidOptionError('backend', `the tfjs ${backend} backend cannot run here: ${probe.reason}`);
}
