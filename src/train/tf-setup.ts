import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core's Node build registers no gradient functions (only the `@tensorflow/tfjs` union package does, through
// tfjs-layers); importing tfjs-layers registers them all in tfjs-core's shared registry, so tf.variableGrads works.
import '@tensorflow/tfjs-layers';

/**
 * Puts tfjs on its pure-JS cpu backend for training: it has every kernel and gradient, and it is single-threaded and
 * deterministic, so a seed reproduces a run bit for bit.
 */
export async function useTrainingBackend(): Promise<void> {
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  await tf.ready();
}
