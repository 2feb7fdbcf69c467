import { BraidError } from '../core/errors.js';
import type { ModelDims } from './config.js';
import { FRESH_SLOT, HostStateSlots, type StateSlots } from './state-slots.js';
import type { BackendName, StepKernel } from './step-kernel.js';

/**
 * One batched model step whose recurrent states stay in the kernel's own state table ({@link StateSlots}): what
 * the runtime drives. Row r of x [n, F] advances the state in slot `slots[r] & ~FRESH_SLOT` (from zeros when
 * {@link FRESH_SLOT} is set) and writes its scores to y [n, L]. Slots are distinct within a step. Rows are
 * independent: a row's result must not depend on n or on the other rows.
 */
export interface SlotStepKernel {
  readonly backend: BackendName;
  readonly device: 'cpu' | 'gpu';
  readonly dims: ModelDims;
  /** Largest n accepted. */
  readonly maxBatch: number;
  readonly states: StateSlots;
  step(n: number, x: Float32Array, slots: Uint32Array, y: Float32Array): void | Promise<void>;
  /**
   * Resolves with the reason when the kernel's device is gone for good (a GPU lost or destroyed); absent for
   * kernels whose device cannot be lost.
   */
  readonly lost?: Promise<string>;
  dispose(): void;
}

/** Where a GPU step failed: rejected before it ran, lost with its device, or its scores not read back. */
export type GpuStepFailure = 'validation' | 'out-of-memory' | 'internal' | 'device-lost' | 'readback';

/**
 * A step that failed on its device (not a mistake of the caller's): the runtime moves to a CPU kernel. `ran` says
 * whether the step may have updated its rows' states before failing.
 */
export class GpuStepError extends BraidError {
  override readonly name = 'GpuStepError';
  constructor(
    readonly failure: GpuStepFailure,
    readonly ran: boolean,
    message: string,
    options?: ErrorOptions,
  ) {
    super('BRAID_ERR_MODEL', `webgpu step: ${message}`, options);
  }
}

/** Rejects a call that would read or write past the caller's arrays or reuse a slot, naming what was wrong. */
export function checkSlotStepArgs(
  kernel: Pick<SlotStepKernel, 'dims' | 'maxBatch' | 'backend' | 'states'>,
  n: number,
  x: Float32Array,
  slots: Uint32Array,
  y: Float32Array,
  seen: Set<number>,
): void {
  const { dims, maxBatch } = kernel;
  const fail = (what: string): never => {
    throw new BraidError('BRAID_ERR_MODEL', `${kernel.backend} step: ${what}`);
  };
  if (!Number.isInteger(n) || n < 1 || n > maxBatch)
    fail(`batch size must be an integer in 1..${maxBatch}, got ${n}`);
  if (x.length < n * dims.input) fail(`x needs ${n}×${dims.input} floats, got ${x.length}`);
  if (y.length < n * dims.labels) fail(`y needs ${n}×${dims.labels} floats, got ${y.length}`);
  if (slots.length < n) fail(`slots needs ${n} entries, got ${slots.length}`);
  seen.clear();
  for (let i = 0; i < n; i++) {
    const slot = ((slots[i] as number) & ~FRESH_SLOT) >>> 0;
    if (slot >= kernel.states.capacity)
      fail(`slot ${slot} is outside the state table of ${kernel.states.capacity}`);
    // Two rows on one slot would race on the same state.
    if (seen.has(slot)) fail(`slot ${slot} appears twice in one step`);
    seen.add(slot);
  }
}

/**
 * Runs a host-state {@link StepKernel} (the CPU kernels, tfjs backends) over a {@link HostStateSlots} table:
 * gathers the rows' states (zeros for fresh rows), steps, and writes the new states back into their slots.
 */
export class HostSlotKernel implements SlotStepKernel {
  readonly backend: BackendName;
  readonly device: 'cpu' | 'gpu';
  readonly dims: ModelDims;
  readonly maxBatch: number;
  readonly states: HostStateSlots;
  private readonly state: Float32Array;
  private readonly next: Float32Array;
  private readonly seen = new Set<number>();

  constructor(readonly inner: StepKernel) {
    this.backend = inner.backend;
    this.device = inner.device;
    this.dims = inner.dims;
    this.maxBatch = inner.maxBatch;
    this.states = new HostStateSlots(inner.dims.state);
    this.state = new Float32Array(inner.maxBatch * inner.dims.state);
    this.next = new Float32Array(inner.maxBatch * inner.dims.state);
  }

  async step(n: number, x: Float32Array, slots: Uint32Array, y: Float32Array): Promise<void> {
    checkSlotStepArgs(this, n, x, slots, y, this.seen);
    const S = this.dims.state;
    for (let i = 0; i < n; i++) {
      const s = slots[i] as number;
      if (s & FRESH_SLOT) this.state.fill(0, i * S, (i + 1) * S);
      else this.state.set(this.states.row(s), i * S);
    }
    await this.inner.step(n, x, this.state, y, this.next);
    // Written back even if the stream was reset or closed meanwhile: a reset marks the slot fresh and a freed slot
    // is handed out fresh, so a stale result here is never read.
    for (let i = 0; i < n; i++)
      this.states.row(((slots[i] as number) & ~FRESH_SLOT) >>> 0).set(this.next.subarray(i * S, (i + 1) * S));
  }

  dispose(): void {
    this.inner.dispose();
  }
}

/** The kernel as the runtime drives it: slot kernels as they are, host-state kernels over a host table. */
export function asSlotKernel(kernel: StepKernel | SlotStepKernel): SlotStepKernel {
  return 'states' in kernel ? kernel : new HostSlotKernel(kernel);
}
