import { BraidError } from '../core/errors.js';

/**
 * Set on a slot number handed to a step: the row starts from a zero state instead of reading its slot. Resets
 * (a new stream, an event-time gap, a request) are this flag, not a write: the step needs no extra upload, and a
 * step already in flight cannot undo a reset by writing its result into the slot afterwards.
 */
export const FRESH_SLOT = 0x8000_0000;

/** Slot numbers use the 31 bits below {@link FRESH_SLOT}. */
export const MAX_SLOTS = 0x8000_0000;

/**
 * Where the recurrent states of the streams live: a table of fixed-size slots, on the host or on a GPU. The
 * {@link StateStore} decides which stream has which slot and when a state is zero; the table only keeps floats.
 * Steps read and write the table themselves (see SlotStepKernel); the store uses these two calls for snapshots,
 * restores and moving the states to another table.
 */
export interface StateSlots {
  /** Floats per slot. */
  readonly stateSize: number;
  /** Slots the table can hold; the store never hands out a slot number at or above it. */
  readonly capacity: number;
  /** Sets the states of some slots: `states` is [slots.length][stateSize]. */
  write(slots: Uint32Array, states: Float32Array): void;
  /**
   * The states of some slots, [slots.length][stateSize], as left by every step started before the call (a GPU
   * table reads them back after the queued steps).
   */
  read(slots: Uint32Array): Promise<Float32Array>;
}

/** The state table in host memory, for the CPU kernels: grows by doubling, up to {@link MAX_SLOTS}. */
export class HostStateSlots implements StateSlots {
  readonly capacity: number = MAX_SLOTS;
  private data: Float32Array;

  constructor(
    readonly stateSize: number,
    initialSlots = 64,
  ) {
    this.data = new Float32Array(Math.max(1, initialSlots) * stateSize);
  }

  /** The live row of one slot (a view: valid until the table grows). */
  row(slot: number): Float32Array {
    this.ensure(slot);
    const S = this.stateSize;
    return this.data.subarray(slot * S, (slot + 1) * S);
  }

  write(slots: Uint32Array, states: Float32Array): void {
    const S = this.stateSize;
    if (states.length !== slots.length * S)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `state table: ${slots.length} slots need ${slots.length}×${S} floats, got ${states.length}`,
      );
    for (let i = 0; i < slots.length; i++)
      this.row(slots[i] as number).set(states.subarray(i * S, (i + 1) * S));
  }

  async read(slots: Uint32Array): Promise<Float32Array> {
    const S = this.stateSize;
    const out = new Float32Array(slots.length * S);
    for (let i = 0; i < slots.length; i++) out.set(this.row(slots[i] as number), i * S);
    return out;
  }

  private ensure(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.capacity)
      throw new BraidError('BRAID_ERR_MODEL', `state table: slot ${slot} is outside 0..${this.capacity - 1}`);
    const needed = (slot + 1) * this.stateSize;
    if (needed <= this.data.length) return;
    let size = this.data.length;
    while (size < needed) size *= 2;
    const grown = new Float32Array(size);
    grown.set(this.data);
    this.data = grown;
  }
}
