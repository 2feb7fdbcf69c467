import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { InvalidOptionError } from '../core/errors.js';
import { deviceOf, loadedTensorflowPackage, noteTensorflowPackage } from './backend-device.js';
import { FusedStepKernel } from './fused-kernel.js';
import { BACKEND_NAMES, type BackendName, type StepKernel } from './step-kernel.js';
import { TfStepKernel } from './tf-kernel.js';
import type { Model } from './weights.js';

export type BackendProbe =
  | { readonly backend: BackendName; readonly available: true; readonly device: 'cpu' | 'gpu' }
  | { readonly backend: BackendName; readonly available: false; readonly reason: string };

const require = createRequire(import.meta.url);

/** Imports a package only if the user installed it (tfjs-node is not a dependency): undefined when it is absent. */
async function optionalImport(specifier: string): Promise<unknown> {
  try {
    require.resolve(specifier);
  } catch {
    return undefined;
  }
  return import(specifier);
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

async function activate(name: string): Promise<string | undefined> {
  try {
    const ok = await tf.setBackend(name);
    if (!ok) return `tfjs could not initialise its "${name}" backend`;
    await tf.ready();
    return undefined;
  } catch (error) {
    return `tfjs "${name}" backend failed to start: ${message(error)}`;
  }
}

async function prepareWasm(): Promise<string | undefined> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // The backend loads its .wasm binaries when it starts; in Node they are read from the package's dist folder.
  // Setting the path again once the backend runs is harmless.
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  wasm.setWasmPaths(`${dist}${path.sep}`);
  return activate('wasm');
}

interface GpuLike {
  requestAdapter(): Promise<unknown>;
}

async function prepareWebGpu(): Promise<string | undefined> {
  const dawn = (await optionalImport('webgpu')) as
    | { create(flags: string[]): GpuLike; globals: Record<string, unknown> }
    | undefined;
  if (!dawn) return 'the optional "webgpu" package (Dawn for Node) is not installed';
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter();
  if (!adapter) return 'Dawn found no usable GPU adapter (software Vulkan such as lavapipe is rejected)';
  // tfjs-backend-webgpu looks for navigator.gpu and the WebGPU classes on the global object, as in a browser.
  const g = globalThis as Record<string, unknown>;
  Object.assign(g, dawn.globals);
  if (!g['navigator']) g['navigator'] = { gpu };
  else if (!(g['navigator'] as { gpu?: unknown }).gpu)
    Object.defineProperty(g['navigator'], 'gpu', { value: gpu, configurable: true });
  if (!(await optionalImport('@tensorflow/tfjs-backend-webgpu')))
    return 'the optional "@tensorflow/tfjs-backend-webgpu" package is not installed';
  return activate('webgpu');
}

async function prepareTensorflow(): Promise<string | undefined> {
  if (loadedTensorflowPackage() === undefined) {
    // The CUDA build first: both register the same "tensorflow" backend, and only it runs on a GPU.
    for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const)
      if (await optionalImport(name)) {
        noteTensorflowPackage(name);
        break;
      }
    if (loadedTensorflowPackage() === undefined)
      return 'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed';
  }
  return activate('tensorflow');
}

/**
 * Finds out whether a backend can run here, making it tfjs's active backend when it is a tfjs one. Never throws:
 * an unavailable backend comes back with the reason, for the start-up log.
 */
export async function probeBackend(backend: BackendName): Promise<BackendProbe> {
  let reason: string | undefined;
  try {
    switch (backend) {
      case 'cpu-fused':
        reason = typeof WebAssembly === 'object' ? undefined : 'WebAssembly is not available';
        break;
      case 'cpu':
        reason = await activate('cpu');
        break;
      case 'wasm':
        reason = await prepareWasm();
        break;
      case 'webgpu':
        reason = await prepareWebGpu();
        break;
      case 'tensorflow':
        reason = await prepareTensorflow();
        break;
    }
  } catch (error) {
    reason = message(error);
  }
  if (reason !== undefined) return { backend, available: false, reason };
  return { backend, available: true, device: deviceOf(backend) };
}

export function parseBackendName(value: string, option = 'backend'): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new InvalidOptionError(option, `must be auto or one of ${BACKEND_NAMES.join('|')}, got "${value}"`);
}

/**
 * Builds a step kernel on a named backend. Throws BraidError BRAID_ERR_INVALID_OPTION naming the backend and why
 * it cannot run when it is unavailable here.
 */
export async function createStepKernel(
  model: Model,
  backend: BackendName,
  maxBatch: number,
): Promise<StepKernel> {
  const probe = await probeBackend(backend);
  if (!probe.available)
    throw new InvalidOptionError('backend', `backend "${backend}" is not available here: ${probe.reason}`);
  if (backend === 'cpu-fused') return new FusedStepKernel(model, maxBatch);
  return new TfStepKernel(model, backend, maxBatch);
}
