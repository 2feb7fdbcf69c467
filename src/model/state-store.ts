import { z } from 'zod';
import { BraidError, InvalidOptionError } from '../core/errors.js';
import type { Micros } from '../core/time.js';
import type { CellType } from './config.js';
import { FRESH_SLOT, HostStateSlots, type StateSlots } from './state-slots.js';

/** Why a stream's state was zeroed: its first window, an event-time gap, a request, or its GPU device was lost. */
export type ResetReason = 'start' | 'gap' | 'request' | 'device_lost';

export interface StatePolicy {
  /** A window starting more than this after the previous window's end starts from a zero state (event time, µs). */
  readonly gapReset: Micros;
  /** A stream with no window for this long (wall clock, µs) is forgotten. Must be ≥ gapReset. */
  readonly idleExpiry: Micros;
}

interface Entry {
  readonly streamId: string;
  /** Where the state lives in the table. */
  slot: number;
  /** The state is zeros whatever the slot holds: never stepped, or reset since its last step. */
  fresh: boolean;
  lastIndex: number;
  lastEnd: Micros;
  lastActive: Micros;
  /** Bumped by every reset, so a step that read the state before a reset does not commit over it. */
  generation: number;
}

/** A stream's state lent to one step: {@link StateStore.commit} records the step's result. */
export interface Lease {
  readonly entry: Entry;
  readonly generation: number;
  /** Why the state was zeroed before this window, if it was. */
  readonly reset: ResetReason | undefined;
}

export interface StreamStateSnapshot {
  readonly streamId: string;
  readonly lastIndex: number;
  readonly lastEnd: Micros;
  /** The state floats, little-endian float32, base64. */
  readonly state: string;
}

/**
 * One stream's recurrent state as the runtime holds it: its floats (exact float32 values) and what the reset
 * policies and the window order need — `lastIndex` (-Infinity after a restart: any index may come next) and
 * `lastEnd` (the gap rule). `state` has {@link StateStore.stateSize} floats.
 */
export interface ModelStreamState {
  readonly lastIndex: number;
  readonly lastEnd: Micros;
  readonly state: Float32Array;
}

/** Every stream's recurrent state, JSON-able, for checkpointing a server or moving streams between processes. */
export interface StateSnapshot {
  readonly format: 'braid-state';
  readonly version: 1;
  readonly cell: CellType;
  readonly hidden: number;
  readonly streams: readonly StreamStateSnapshot[];
}

const snapshotSchema = z.object({
  format: z.literal('braid-state'),
  version: z.literal(1),
  cell: z.enum(['gru', 'lstm']),
  hidden: z.number().int().min(1),
  streams: z.array(
    z.object({
      streamId: z.string().min(1),
      lastIndex: z.number().int(),
      lastEnd: z.number().int(),
      state: z.string(),
    }),
  ),
});

export function encodeFloats(values: Float32Array): string {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] as number, true);
  return Buffer.from(bytes).toString('base64');
}

export function decodeFloats(text: string, expected: number, what: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== expected * 4)
    throw new BraidError(
      'BRAID_ERR_MODEL',
      `${what}: expected ${expected} float32 (${expected * 4} bytes), got ${bytes.length} bytes`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(expected);
  for (let i = 0; i < expected; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

const stateSizeOf = (cell: CellType, hidden: number): number => (cell === 'gru' ? hidden : 2 * hidden);

/**
 * Recurrent state per stream, with the reset policies: zero on a stream's first window, after an event-time gap
 * longer than {@link StatePolicy.gapReset}, and on request; forgotten on close and after
 * {@link StatePolicy.idleExpiry} of wall-clock inactivity. The floats live in a {@link StateSlots} table (host
 * memory for the CPU kernels, a GPU buffer for webgpu); the store hands out its slots and keeps everything else,
 * so every backend applies the same policies. A zeroed state is a flag ({@link Entry.fresh}), never a write.
 */
export class StateStore {
  private readonly entries = new Map<string, Entry>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private table: StateSlots;

  constructor(
    readonly cell: CellType,
    readonly hidden: number,
    private readonly policy: StatePolicy,
    slots?: StateSlots,
  ) {
    // Expiry follows the wall clock, gaps the event time: a replay faster than real time never expires a stream,
    // so results match a live run only if every gap long enough to expire also resets by the gap rule.
    if (policy.gapReset > policy.idleExpiry)
      throw new InvalidOptionError(
        'gapReset',
        `must not exceed idleExpiry (${policy.idleExpiry} µs), got ${policy.gapReset} µs: a longer gap would reset a live stream (by expiry) but not a fast replay`,
      );
    this.table = slots ?? new HostStateSlots(stateSizeOf(cell, hidden));
    if (this.table.stateSize !== this.stateSize)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `state table holds ${this.table.stateSize} floats a slot, the ${cell} with hidden=${hidden} needs ${this.stateSize}`,
      );
  }

  get stateSize(): number {
    return stateSizeOf(this.cell, this.hidden);
  }

  /** The table the states live in. */
  get slots(): StateSlots {
    return this.table;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Streams that can still get a state (slots not in use). */
  get free(): number {
    return this.table.capacity - this.entries.size;
  }

  has(streamId: string): boolean {
    return this.entries.has(streamId);
  }

  /** Index of the stream's last committed window, or undefined for a stream without state. */
  lastIndex(streamId: string): number | undefined {
    return this.entries.get(streamId)?.lastIndex;
  }

  /**
   * The state a window of `streamId` starting at `start` must run from, after applying the reset policies. A new
   * stream gets a slot; throws BRAID_ERR_MODEL when none is free (check {@link free} first).
   */
  acquire(streamId: string, start: Micros, now: Micros): Lease {
    let entry = this.entries.get(streamId);
    let reset: ResetReason | undefined;
    if (!entry) {
      entry = {
        streamId,
        slot: this.allocate(),
        fresh: true,
        lastIndex: Number.NEGATIVE_INFINITY,
        lastEnd: start,
        lastActive: now,
        generation: 0,
      };
      this.entries.set(streamId, entry);
      reset = 'start';
    } else if (start - entry.lastEnd > this.policy.gapReset) {
      entry.fresh = true;
      entry.generation++;
      reset = 'gap';
    }
    return { entry, generation: entry.generation, reset };
  }

  /** The slot number a step passes to the kernel for a lease: {@link FRESH_SLOT} set when the state is zeros. */
  slotOf(lease: Lease): number {
    return (lease.entry.fresh ? lease.entry.slot | FRESH_SLOT : lease.entry.slot) >>> 0;
  }

  /**
   * Records a step's result (the kernel already wrote the state into the slot). Returns false, recording nothing,
   * when the stream was closed, expired or reset while the step ran: its state stays as that left it.
   */
  commit(lease: Lease, index: number, end: Micros, now: Micros): boolean {
    const { entry } = lease;
    if (this.entries.get(entry.streamId) !== entry || entry.generation !== lease.generation) return false;
    entry.fresh = false;
    entry.lastIndex = index;
    entry.lastEnd = end;
    entry.lastActive = now;
    return true;
  }

  /** Zeroes a stream's state on request; false when the stream has none. */
  reset(streamId: string): boolean {
    const entry = this.entries.get(streamId);
    if (!entry) return false;
    entry.fresh = true;
    entry.generation++;
    return true;
  }

  /**
   * Forgets the stream's last window index, keeping its state: its timeline started again, and windows of the new
   * one may have lower indices. A new timeline far ahead still resets by the gap rule.
   */
  rewind(streamId: string): boolean {
    const entry = this.entries.get(streamId);
    if (!entry) return false;
    entry.lastIndex = Number.NEGATIVE_INFINITY;
    return true;
  }

  /** Forgets a stream (it closed); its slot goes back to the free list. */
  delete(streamId: string): boolean {
    const entry = this.entries.get(streamId);
    if (!entry) return false;
    this.entries.delete(streamId);
    this.freeSlots.push(entry.slot);
    return true;
  }

  /** Forgets streams idle for longer than the policy allows; returns their ids. */
  expireIdle(now: Micros): string[] {
    const expired: string[] = [];
    for (const [id, entry] of this.entries)
      if (now - entry.lastActive > this.policy.idleExpiry) {
        this.delete(id);
        expired.push(id);
      }
    return expired;
  }

  /**
   * Every stepped stream's state, read from the table. The streams and their indices are taken when it is called;
   * the floats are those left by the steps started before it (a caller must not have a step half-committed).
   */
  async snapshot(): Promise<StateSnapshot> {
    const live = [...this.entries.values()].filter((e) => Number.isFinite(e.lastIndex));
    const stored = live.filter((e) => !e.fresh);
    const floats = await this.table.read(Uint32Array.from(stored.map((e) => e.slot)));
    const S = this.stateSize;
    const zeros = new Float32Array(S);
    const stateOf = new Map(stored.map((e, i) => [e, floats.subarray(i * S, (i + 1) * S)]));
    const streams: StreamStateSnapshot[] = live.map((e) => ({
      streamId: e.streamId,
      lastIndex: e.lastIndex,
      lastEnd: e.lastEnd,
      state: encodeFloats(stateOf.get(e) ?? zeros),
    }));
    return { format: 'braid-state', version: 1, cell: this.cell, hidden: this.hidden, streams };
  }

  /**
   * One stream's state, as left by every step started before the call (its floats are read from the table then: a
   * host table copies them at once, a GPU table reads them back after the queued steps), or undefined when it has
   * none. Unlike {@link snapshot}, it may be called while other streams step.
   */
  exportStream(streamId: string): Promise<ModelStreamState> | undefined {
    const entry = this.entries.get(streamId);
    if (!entry) return undefined;
    const { lastIndex, lastEnd, fresh } = entry;
    if (fresh) return Promise.resolve({ lastIndex, lastEnd, state: new Float32Array(this.stateSize) });
    return this.table.read(Uint32Array.of(entry.slot)).then((state) => ({ lastIndex, lastEnd, state }));
  }

  /**
   * Gives a stream the state {@link exportStream} gave (another process's, for a stream taken over), in a slot of its
   * own; the other streams are untouched. Throws BRAID_ERR_MODEL when the stream has a state already, the floats
   * are not this model's size, or no slot is free. Must not run while a step is running that has the stream.
   */
  importStream(streamId: string, saved: ModelStreamState, now: Micros): void {
    if (this.entries.has(streamId))
      throw new BraidError('BRAID_ERR_MODEL', `stream "${streamId}" has a state already`);
    if (saved.state.length !== this.stateSize)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `state of stream "${streamId}" has ${saved.state.length} floats, the ${this.cell} with hidden=${this.hidden} has ${this.stateSize}`,
      );
    const slot = this.allocate();
    this.table.write(Uint32Array.of(slot), saved.state);
    this.entries.set(streamId, {
      streamId,
      slot,
      fresh: false,
      lastIndex: saved.lastIndex,
      lastEnd: saved.lastEnd,
      lastActive: now,
      generation: 0,
    });
  }

  /**
   * Replaces every state with a snapshot's. Throws BRAID_ERR_MODEL, changing nothing, when the snapshot is malformed,
   * was taken from a model with another cell type or size, or holds more streams than the table has slots. Must
   * not run while a step is running (its result would land in a restored stream's slot).
   */
  restore(snapshot: unknown, now: Micros): void {
    const parsed = snapshotSchema.safeParse(snapshot);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(snapshot)'}: ${i.message}`);
      throw new BraidError('BRAID_ERR_MODEL', `invalid state snapshot: ${issues.join('; ')}`);
    }
    const s = parsed.data;
    if (s.cell !== this.cell || s.hidden !== this.hidden)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `state snapshot is for a ${s.cell} with hidden=${s.hidden}, this model is a ${this.cell} with hidden=${this.hidden}`,
      );
    if (s.streams.length > this.table.capacity)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `state snapshot holds ${s.streams.length} streams, the state table has ${this.table.capacity} slots`,
      );
    const S = this.stateSize;
    const floats = new Float32Array(s.streams.length * S);
    const restored = new Map<string, Entry>();
    s.streams.forEach((stream, i) => {
      if (restored.has(stream.streamId))
        throw new BraidError('BRAID_ERR_MODEL', `state snapshot lists stream "${stream.streamId}" twice`);
      floats.set(decodeFloats(stream.state, S, `state of stream "${stream.streamId}"`), i * S);
      const { streamId, lastIndex, lastEnd } = stream;
      restored.set(streamId, {
        streamId,
        slot: i,
        fresh: false,
        lastIndex,
        lastEnd,
        lastActive: now,
        generation: 0,
      });
    });
    this.entries.clear();
    this.freeSlots.length = 0;
    this.nextSlot = restored.size;
    for (const [id, entry] of restored) this.entries.set(id, entry);
    this.table.write(
      Uint32Array.from({ length: restored.size }, (_, i) => i),
      floats,
    );
  }

  /**
   * Moves every state into another table (the runtime changing backend): reads them from the current one and
   * writes them to `target`. Streams whose state cannot be read (the read fails: a lost GPU), or that `distrust`
   * names, start from zeros there; they come back in `lost`. Must not run while a step is running.
   */
  async moveTo(
    target: StateSlots,
    distrust: ReadonlySet<string> = new Set(),
  ): Promise<{ carried: number; lost: string[] }> {
    if (target.stateSize !== this.stateSize)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `state table holds ${target.stateSize} floats a slot, needs ${this.stateSize}`,
      );
    if (target.capacity < this.entries.size)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `cannot move ${this.entries.size} stream states into a table of ${target.capacity} slots`,
      );
    const wanted = [...this.entries.values()].filter((e) => !e.fresh && !distrust.has(e.streamId));
    let floats: Float32Array | undefined;
    try {
      floats = await this.table.read(Uint32Array.from(wanted.map((e) => e.slot)));
    } catch {
      floats = undefined;
    }
    const S = this.stateSize;
    const stateOf = new Map<Entry, Float32Array>();
    if (floats)
      for (let i = 0; i < wanted.length; i++)
        stateOf.set(wanted[i] as Entry, floats.subarray(i * S, (i + 1) * S));
    // Streams closed or reset while the read ran are as they are now: gone, or fresh.
    const lost: string[] = [];
    const carriedSlots: number[] = [];
    const carried: Float32Array[] = [];
    let slot = 0;
    for (const entry of this.entries.values()) {
      entry.slot = slot++;
      const state = stateOf.get(entry);
      if (entry.fresh) continue;
      if (state) {
        carriedSlots.push(entry.slot);
        carried.push(state);
      } else {
        entry.fresh = true;
        lost.push(entry.streamId);
      }
    }
    const packed = new Float32Array(carried.length * S);
    for (let i = 0; i < carried.length; i++) packed.set(carried[i] as Float32Array, i * S);
    this.table = target;
    this.freeSlots.length = 0;
    this.nextSlot = slot;
    target.write(Uint32Array.from(carriedSlots), packed);
    return { carried: carried.length, lost };
  }

  private allocate(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    if (this.nextSlot >= this.table.capacity)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `all ${this.table.capacity} state slots are in use (close streams or build the kernel with more slots)`,
      );
    return this.nextSlot++;
  }
}
