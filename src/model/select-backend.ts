import { BraidError } from '../core/errors.js';
import { createKernel, probeBackend } from './backends.js';
import type { SlotStepKernel } from './slot-kernel.js';
import { BACKEND_NAMES, type BackendName } from './step-kernel.js';
import { softwareGpuAllowed } from './webgpu-adapter.js';
import { type Model, mulberry32 } from './weights.js';

export interface BackendFigure {
  readonly backend: BackendName;
  readonly device: 'cpu' | 'gpu';
  readonly batch: number;
  /** Median step latency, reading the results back included. */
  readonly msPerStep: number;
  readonly rowsPerSecond: number;
}

export interface BackendSelection {
  readonly kernel: SlotStepKernel;
  readonly backend: BackendName;
  /** Start-up measurements (empty when a backend was named). */
  readonly figures: readonly BackendFigure[];
  readonly skipped: readonly { readonly backend: BackendName; readonly reason: string }[];
  /** One line for the log: why this backend. */
  readonly reason: string;
}

export interface SelectBackendOptions {
  /** 'auto' measures every available backend; a name forces that one. */
  readonly backend?: 'auto' | BackendName;
  readonly maxBatch: number;
  /** Batch sizes the deployment expects; auto compares the time for one step of each. Default [1, 16, maxBatch]. */
  readonly batchSizes?: readonly number[];
  /** Time spent measuring each backend at each batch size (after two warm-up steps). Default 150 ms. */
  readonly measureMs?: number;
  /** webgpu: streams the GPU keeps state for (slots). Default 10,000. */
  readonly maxStreams?: number;
  /**
   * Whether a named `webgpu` may run on a software adapter. Default: BRAID_WEBGPU_SOFTWARE=1 in the environment.
   * Auto-selection never picks a software adapter.
   */
  readonly allowSoftwareGpu?: boolean;
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** A GPU within this factor of the fastest backend is preferred: it leaves the CPU to the rest of the pipeline. */
export const GPU_PREFERENCE = 1.1;

/**
 * Median latency of a kernel's step at one batch size, on fixed pseudo-random inputs, states in slots 0..batch−1
 * (as the runtime drives it: gathering and scattering host states included).
 */
export async function measureStep(kernel: SlotStepKernel, batch: number, budgetMs: number): Promise<number> {
  const { input, labels } = kernel.dims;
  const next = mulberry32(batch);
  const x = Float32Array.from({ length: batch * input }, () => next() * 2 - 1);
  const slots = Uint32Array.from({ length: batch }, (_, i) => i);
  const y = new Float32Array(batch * labels);
  for (let i = 0; i < 2; i++) await kernel.step(batch, x, slots, y);
  const samples: number[] = [];
  const until = performance.now() + budgetMs;
  while (samples.length < 3 || (performance.now() < until && samples.length < 200)) {
    const t0 = performance.now();
    await kernel.step(batch, x, slots, y);
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1] as number;
}

/**
 * Picks from start-up figures: the backend with the least total time for one step at each expected batch size,
 * except that a GPU within {@link GPU_PREFERENCE} of it wins.
 */
export function chooseBackend(figures: readonly BackendFigure[]): { backend: BackendName; reason: string } {
  const totals = new Map<BackendName, { ms: number; device: 'cpu' | 'gpu' }>();
  for (const f of figures) {
    const t = totals.get(f.backend) ?? { ms: 0, device: f.device };
    t.ms += f.msPerStep;
    totals.set(f.backend, t);
  }
  const ranked = [...totals].sort((a, b) => a[1].ms - b[1].ms);
  const [fastest, fastestTotal] = ranked[0] ?? [];
  if (!fastest || !fastestTotal) throw new RangeError('chooseBackend needs at least one figure');
  const describe = ranked.map(([b, t]) => `${b} ${t.ms.toFixed(3)} ms`).join(', ');
  const gpu = ranked.find(([, t]) => t.device === 'gpu' && t.ms <= fastestTotal.ms * GPU_PREFERENCE);
  if (gpu && gpu[0] !== fastest)
    return {
      backend: gpu[0],
      reason: `${gpu[0]} (GPU) is within ${Math.round((GPU_PREFERENCE - 1) * 100)}% of the fastest, ${fastest}; totals: ${describe}`,
    };
  return {
    backend: fastest,
    reason: `${fastest} is fastest; totals over the expected batch sizes: ${describe}`,
  };
}

/** " (on <adapter>)" for the log line of a webgpu choice. */
async function gpuNote(allowSoftwareGpu: boolean): Promise<string> {
  const probe = await probeBackend('webgpu', { allowSoftwareGpu });
  return probe.available && probe.note ? ` (${probe.note})` : '';
}

/**
 * Creates the step kernel for a runtime. With backend 'auto' (the default) every backend is probed, each available
 * one is built and timed at the expected batch sizes, and the winner of {@link chooseBackend} is built; the figures
 * and the reason each other backend was skipped (unavailable, failed to build, failed while measuring) come back for
 * the log. Throws BRAID_ERR_MODEL with every reason when no backend can run the model.
 */
export async function selectBackend(model: Model, options: SelectBackendOptions): Promise<BackendSelection> {
  const wanted = options.backend ?? 'auto';
  const build = (backend: BackendName, allowSoftwareGpu: boolean): Promise<SlotStepKernel> =>
    createKernel(model, backend, {
      maxBatch: options.maxBatch,
      maxStreams: options.maxStreams,
      allowSoftwareGpu,
    });
  if (wanted !== 'auto') {
    const allow = options.allowSoftwareGpu ?? softwareGpuAllowed();
    const kernel = await build(wanted, allow);
    const note = wanted === 'webgpu' ? await gpuNote(allow) : '';
    return {
      kernel,
      backend: wanted,
      figures: [],
      skipped: [],
      reason: `backend ${wanted} was named${note}`,
    };
  }
  const sizes = [...new Set(options.batchSizes ?? [1, 16, options.maxBatch])]
    .filter((b) => b >= 1 && b <= options.maxBatch)
    .sort((a, b) => a - b);
  const measureMs = options.measureMs ?? 150;
  const figures: BackendFigure[] = [];
  const skipped: { backend: BackendName; reason: string }[] = [];
  for (const backend of BACKEND_NAMES) {
    const probe = await probeBackend(backend);
    if (!probe.available) {
      skipped.push({ backend, reason: probe.reason });
      continue;
    }
    let kernel: SlotStepKernel;
    try {
      kernel = await build(backend, false);
    } catch (error) {
      // Probing only says the backend runs here; building this model on it can still fail. Try the others.
      skipped.push({ backend, reason: `failed to build: ${errorText(error)}` });
      continue;
    }
    try {
      for (const batch of sizes) {
        const ms = await measureStep(kernel, batch, measureMs);
        figures.push({
          backend,
          device: probe.device,
          batch,
          msPerStep: ms,
          rowsPerSecond: (batch * 1000) / ms,
        });
      }
    } catch (error) {
      skipped.push({ backend, reason: `failed while measuring: ${errorText(error)}` });
      figures.splice(0, figures.length, ...figures.filter((f) => f.backend !== backend));
    } finally {
      kernel.dispose();
    }
  }
  if (figures.length === 0)
    throw new BraidError(
      'BRAID_ERR_MODEL',
      `no backend can run this model here: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`,
    );
  const { backend, reason } = chooseBackend(figures);
  // Built again: measuring later tfjs backends switched tfjs's active backend away from it.
  const kernel = await build(backend, false);
  const note = backend === 'webgpu' ? await gpuNote(false) : '';
  return { kernel, backend, figures, skipped, reason: `${reason}${note}` };
}
