import type { BackendName } from './step-kernel.js';

/** The packages that register tfjs's `tensorflow` backend: the same name for libtensorflow's CPU and CUDA builds. */
export type TensorflowPackage = '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node';

/**
 * Which of them braid loaded. Process-wide by nature: tfjs keeps one backend registry per process, and a package
 * once imported stays loaded.
 */
let tensorflowPackage: TensorflowPackage | undefined;

/** Called by the probe once it has imported a package for the `tensorflow` backend. */
export function noteTensorflowPackage(name: TensorflowPackage): void {
  tensorflowPackage = name;
}

export function loadedTensorflowPackage(): TensorflowPackage | undefined {
  return tensorflowPackage;
}

/**
 * Where a backend runs: the one place that decides it. `tensorflow` is a GPU only when tfjs-node-gpu is what was
 * loaded; with plain tfjs-node (or nothing loaded yet) it is libtensorflow on the CPU.
 */
export function deviceOf(backend: BackendName): 'cpu' | 'gpu' {
  if (backend === 'webgpu') return 'gpu';
  if (backend === 'tensorflow') return tensorflowPackage === '@tensorflow/tfjs-node-gpu' ? 'gpu' : 'cpu';
  return 'cpu';
}
