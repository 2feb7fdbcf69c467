import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { InvalidOptionError } from '../core/errors.js';
import { deviceOf, loadedTensorflowPackage, noteTensorflowPackage } from './backend-device.js';
import { FusedStepKernel } from './fused-kernel.js';
import { HostSlotKernel, type SlotStepKernel } from './slot-kernel.js';
import { BACKEND_NAMES, type BackendName, type StepKernel } from './step-kernel.js';
import { TfStepKernel } from './tf-kernel.js';
import {
  adapterName,
  openWebGpuDevice,
  probeAdapter,
  SOFTWARE_GPU_ENV,
  softwareRefusal,
} from './webgpu-adapter.js';
import { WebGpuStep } from './webgpu-step.js';
import type { Model } from './weights.js';

export type BackendProbe =
  | {
      readonly backend: BackendName;
      readonly available: true;
      readonly device: 'cpu' | 'gpu';
      /** Said in the log with the choice: which GPU adapter, and why a software one is used. */
      readonly note?: string;
    }
  | { readonly backend: BackendName; readonly available: false; readonly reason: string };

/** The backends whose kernels keep the states on the host: everything but `webgpu`. */
export type HostBackendName = Exclude<BackendName, 'webgpu'>;

export interface ProbeOptions {
  /**
   * Whether `webgpu` may run on a software adapter (SwiftShader, lavapipe). Auto-selection never allows it; a named
   * backend allows it when BRAID_WEBGPU_SOFTWARE=1 ({@link softwareGpuAllowed}).
   */
  readonly allowSoftwareGpu?: boolean;
}

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
 * an unavailable backend comes back with the reason, for the start-up log. For `webgpu` it asks Dawn for its
 * adapter (in a child process, see webgpu-adapter.ts) and refuses a software one unless allowed.
 */
export async function probeBackend(backend: BackendName, options: ProbeOptions = {}): Promise<BackendProbe> {
  let reason: string | undefined;
  let note: string | undefined;
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
      case 'webgpu': {
        const probe = await probeAdapter();
        if (!probe.found) reason = probe.reason;
        else if (probe.software && !options.allowSoftwareGpu) reason = softwareRefusal(probe.adapter);
        else
          note = probe.software
            ? `on ${adapterName(probe.adapter)}, a software adapter, because ${SOFTWARE_GPU_ENV}=1: slow, for tests`
            : `on ${adapterName(probe.adapter)}`;
        break;
      }
      case 'tensorflow':
        reason = await prepareTensorflow();
        break;
    }
  } catch (error) {
    reason = message(error);
  }
  if (reason !== undefined) return { backend, available: false, reason };
  return { backend, available: true, device: deviceOf(backend), ...(note ? { note } : {}) };
}

export function parseBackendName(value: string, option = 'backend'): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new InvalidOptionError(option, `must be auto or one of ${BACKEND_NAMES.join('|')}, got "${value}"`);
}

/**
 * Builds a host-state step kernel on a named backend (the CPU kernels and the tfjs backends). Throws BraidError
 * BRAID_ERR_INVALID_OPTION naming the backend and why it cannot run when it is unavailable here.
 */
export async function createStepKernel(
  model: Model,
  backend: HostBackendName,
  maxBatch: number,
): Promise<StepKernel> {
  if ((backend as BackendName) === 'webgpu')
    throw new InvalidOptionError('backend', 'webgpu keeps the states on the GPU: build it with createKernel');
  const probe = await probeBackend(backend);
  if (!probe.available)
    throw new InvalidOptionError('backend', `backend "${backend}" is not available here: ${probe.reason}`);
  if (backend === 'cpu-fused') return new FusedStepKernel(model, maxBatch);
  return new TfStepKernel(model, backend, maxBatch);
}

export interface KernelOptions extends ProbeOptions {
  readonly maxBatch: number;
  /** webgpu: slots in the GPU state table, i.e. streams holding state at once. Default {@link DEFAULT_GPU_STREAMS}. */
  readonly maxStreams?: number;
  /** webgpu: threads per workgroup (default 128). */
  readonly workgroupSize?: number;
}

/** Streams the webgpu backend keeps state for by default: the aligner's default stream limit. */
export const DEFAULT_GPU_STREAMS = 10_000;

/**
 * Builds the kernel a runtime drives on a named backend: `webgpu` is the fused WGSL step on a device of its own
 * (states in GPU slots); every other backend is its host kernel over a host state table. Throws
 * BRAID_ERR_INVALID_OPTION naming the backend and why when it is unavailable here, BRAID_ERR_MODEL when it cannot
 * build this model (a device limit, named with its value).
 */
export async function createKernel(
  model: Model,
  backend: BackendName,
  options: KernelOptions,
): Promise<SlotStepKernel> {
  if (backend !== 'webgpu')
    return new HostSlotKernel(await createStepKernel(model, backend, options.maxBatch));
  const allowSoftware = options.allowSoftwareGpu ?? false;
  const probe = await probeBackend(backend, { allowSoftwareGpu: allowSoftware });
  if (!probe.available)
    throw new InvalidOptionError('backend', `backend "${backend}" is not available here: ${probe.reason}`);
  const maxStreams = options.maxStreams ?? Math.max(DEFAULT_GPU_STREAMS, options.maxBatch);
  const opened = await openWebGpuDevice({ allowSoftware });
  try {
    return await WebGpuStep.create(opened.device, model, {
      // A step's rows are distinct streams, each in its own slot: never more rows than slots.
      maxBatch: Math.min(options.maxBatch, maxStreams),
      maxStreams,
      workgroupSize: options.workgroupSize,
      owner: { gpu: opened.gpu },
    });
  } catch (error) {
    opened.device.destroy();
    throw error;
  }
}
