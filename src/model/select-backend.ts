import { BraidError } from '../core/errors.js';
import { createStepKernel, probeBackend } from './backends.js';
import { BACKEND_NAMES, type BackendName, type StepKernel } from './step-kernel.js';
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
  readonly kernel: StepKernel;
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
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** A GPU within this factor of the fastest backend is preferred: it leaves the CPU to the rest of the pipeline. */
export const GPU_PREFERENCE = 1.1;

/** Median latency of a kernel's step at one batch size, on fixed pseudo-random inputs. */
export async function measureStep(kernel: StepKernel, batch: number, budgetMs: number): Promise<number> {
  const { input, state, labels } = kernel.dims;
  const next = mulberry32(batch);
  const x = Float32Array.from({ length: batch * input }, () => next() * 2 - 1);
  const s = Float32Array.from({ length: batch * state }, () => next() * 2 - 1);
  const y = new Float32Array(batch * labels);
  const s2 = new Float32Array(batch * state);
  for (let i = 0; i < 2; i++) await kernel.step(batch, x, s, y, s2);
  const samples: number[] = [];
  const until = performance.now() + budgetMs;
  while (samples.length < 3 || (performance.now() < until && samples.length < 200)) {
    const t0 = performance.now();
    await kernel.step(batch, x, s, y, s2);
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

/**
 * Creates the step kernel for a runtime. With backend 'auto' (the default) every backend is probed, each available
 * one is built and timed at the expected batch sizes, and the winner of {@link chooseBackend} is built; the figures
 * and the reason each other backend was skipped (unavailable, failed to build, failed while measuring) come back for
 * the log. Throws BRAID_ERR_MODEL with every reason when no backend can run the model.
 */
export async function selectBackend(model: Model, options: SelectBackendOptions): Promise<BackendSelection> {
  const wanted = options.backend ?? 'auto';
  if (wanted !== 'auto') {
    const kernel = await createStepKernel(model, wanted, options.maxBatch);
    return { kernel, backend: wanted, figures: [], skipped: [], reason: `backend ${wanted} was named` };
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
    let kernel: StepKernel;
    try {
      kernel = await createStepKernel(model, backend, options.maxBatch);
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
  const kernel = await createStepKernel(model, backend, options.maxBatch);
  return { kernel, backend, figures, skipped, reason };
}
