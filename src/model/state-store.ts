import { z } from 'zod';
import { BraidError, InvalidOptionError } from '../core/errors.js';
import type { Micros } from '../core/time.js';
import type { CellType } from './config.js';

export type ResetReason = 'start' | 'gap' | 'request';

export interface StatePolicy {
  /** A window starting more than this after the previous window's end starts from a zero state (event time, µs). */
  readonly gapReset: Micros;
  /** A stream with no window for this long (wall clock, µs) is forgotten. Must be ≥ gapReset. */
  readonly idleExpiry: Micros;
}

interface Entry {
  readonly streamId: string;
  readonly state: Float32Array;
  lastIndex: number;
  lastEnd: Micros;
  lastActive: Micros;
  /** Bumped by every reset, so a step that read the state before a reset does not write over it. */
  generation: number;
}

/** A stream's state lent to one step: {@link StateStore.commit} writes the step's result back. */
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

/**
 * Recurrent state per stream, with the reset policies: zero on a stream's first window, after an event-time gap
 * longer than {@link StatePolicy.gapReset}, and on request; forgotten on close and after
 * {@link StatePolicy.idleExpiry} of wall-clock inactivity.
 */
export class StateStore {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly cell: CellType,
    readonly hidden: number,
    private readonly policy: StatePolicy,
  ) {
    // Expiry follows the wall clock, gaps the event time: a replay faster than real time never expires a stream,
    // so results match a live run only if every gap long enough to expire also resets by the gap rule.
    if (policy.gapReset > policy.idleExpiry)
      throw new InvalidOptionError(
        'gapReset',
        `must not exceed idleExpiry (${policy.idleExpiry} µs), got ${policy.gapReset} µs: a longer gap would reset a live stream (by expiry) but not a fast replay`,
      );
  }

  get stateSize(): number {
    return this.cell === 'gru' ? this.hidden : 2 * this.hidden;
  }

  get size(): number {
    return this.entries.size;
  }

  has(streamId: string): boolean {
    return this.entries.has(streamId);
  }

  /** Index of the stream's last committed window, or undefined for a stream without state. */
  lastIndex(streamId: string): number | undefined {
    return this.entries.get(streamId)?.lastIndex;
  }

  /** The state a window of `streamId` starting at `start` must run from, after applying the reset policies. */
  acquire(streamId: string, start: Micros, now: Micros): Lease {
    let entry = this.entries.get(streamId);
    let reset: ResetReason | undefined;
    if (!entry) {
      entry = {
        streamId,
        state: new Float32Array(this.stateSize),
        lastIndex: Number.NEGATIVE_INFINITY,
        lastEnd: start,
        lastActive: now,
        generation: 0,
      };
      this.entries.set(streamId, entry);
      reset = 'start';
    } else if (start - entry.lastEnd > this.policy.gapReset) {
      entry.state.fill(0);
      entry.generation++;
      reset = 'gap';
    }
    return { entry, generation: entry.generation, reset };
  }

  /**
   * Stores a step's result. Returns false (and stores nothing) when the stream was closed, expired or reset while
   * the step ran.
   */
  commit(lease: Lease, next: Float32Array, index: number, end: Micros, now: Micros): boolean {
    const { entry } = lease;
    if (this.entries.get(entry.streamId) !== entry || entry.generation !== lease.generation) return false;
    entry.state.set(next);
    entry.lastIndex = index;
    entry.lastEnd = end;
    entry.lastActive = now;
    return true;
  }

  /** Zeroes a stream's state on request; false when the stream has none. */
  reset(streamId: string): boolean {
    const entry = this.entries.get(streamId);
    if (!entry) return false;
    entry.state.fill(0);
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

  /** Forgets a stream (it closed). */
  delete(streamId: string): boolean {
    return this.entries.delete(streamId);
  }

  /** Forgets streams idle for longer than the policy allows; returns their ids. */
  expireIdle(now: Micros): string[] {
    const expired: string[] = [];
    for (const [id, entry] of this.entries)
      if (now - entry.lastActive > this.policy.idleExpiry) {
        this.entries.delete(id);
        expired.push(id);
      }
    return expired;
  }

  snapshot(): StateSnapshot {
    const streams: StreamStateSnapshot[] = [];
    for (const e of this.entries.values())
      if (Number.isFinite(e.lastIndex))
        streams.push({
          streamId: e.streamId,
          lastIndex: e.lastIndex,
          lastEnd: e.lastEnd,
          state: encodeFloats(e.state),
        });
    return { format: 'braid-state', version: 1, cell: this.cell, hidden: this.hidden, streams };
  }

  /**
   * Replaces every state with a snapshot's. Throws BRAID_ERR_MODEL, changing nothing, when the snapshot is malformed
   * or was taken from a model with another cell type or size.
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
    const restored = new Map<string, Entry>();
    for (const stream of s.streams) {
      if (restored.has(stream.streamId))
        throw new BraidError('BRAID_ERR_MODEL', `state snapshot lists stream "${stream.streamId}" twice`);
      const state = decodeFloats(stream.state, this.stateSize, `state of stream "${stream.streamId}"`);
      restored.set(stream.streamId, { ...stream, state, lastActive: now, generation: 0 });
    }
    this.entries.clear();
    for (const [id, entry] of restored) this.entries.set(id, entry);
  }
}
