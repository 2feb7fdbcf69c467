import { z } from 'zod';
import { MODALITIES } from '../core/events.js';

/**
 * One stream's aligner state without its buffered events: what a checkpoint keeps so another process can carry on
 * the stream's windows where this one left off (src/cluster). The buffered events are not in it: they are the
 * stream's events of capture time at or after `nextStart`, and are put back by {@link REFILL}ing the inputs that
 * carried them. JSON has no infinities: a value not set yet (no event, no window closed) is null.
 */
export interface AlignerStreamState {
  readonly streamId: string;
  /** Lowest window index not closed yet (null before the first window closed, or after a restart). */
  readonly nextWindow: number | null;
  /** Start of that window (µs): every event before it is released or late. Checked on import (same grid). */
  readonly nextStart: number | null;
  /** End of the last closed window (µs), null when none. */
  readonly closedUpTo: number | null;
  readonly suspended: boolean;
  /** Restart controls the stream has taken (its timeline started again that often). */
  readonly restarts: number;
  readonly sources: readonly AlignerSourceState[];
}

export interface AlignerSourceState {
  readonly modality: (typeof MODALITIES)[number];
  /** Highest capture time of the current epoch, null before its first event. */
  readonly maxTime: number | null;
  /** The source's watermark (µs), null before its first event or progress bound. */
  readonly watermark: number | null;
  readonly idle: boolean;
  /** Spans of capture time whose events were lost ([from, to]) that still touch open windows. */
  readonly gaps: readonly (readonly [number, number])[];
  /**
   * Audio: capture end and seq of the last frame released, which the next one is compared with (audio gaps and
   * overlaps); null when there is none to compare with. Absent in a state saved before they were kept.
   */
  readonly audioEnd?: number | null;
  readonly audioSeq?: number | null;
  /** Audio: [time, seq] of frames still buffered that each began an epoch (a reset): compared with nothing before. */
  readonly audioEpochStarts?: readonly (readonly [number, number])[];
  /** Audio: a reset was taken and no frame since. */
  readonly audioEpochPending?: boolean;
}

const micros = z.number().int();

export const alignerStreamStateSchema = z.object({
  streamId: z.string().min(1),
  nextWindow: micros.nullable(),
  nextStart: micros.nullable(),
  closedUpTo: micros.nullable(),
  suspended: z.boolean(),
  restarts: z.number().int().nonnegative(),
  sources: z.array(
    z.object({
      modality: z.enum(MODALITIES),
      maxTime: micros.nullable(),
      watermark: micros.nullable(),
      idle: z.boolean(),
      gaps: z.array(z.tuple([micros, micros])),
      audioEnd: micros.nullish(),
      audioSeq: z.number().int().nonnegative().nullish(),
      audioEpochStarts: z.array(z.tuple([micros, z.number().int().nonnegative()])).optional(),
      audioEpochPending: z.boolean().optional(),
    }),
  ),
}) satisfies z.ZodType<AlignerStreamState>;

/**
 * Marks an input that the aligner took once already, before the state it now starts from was saved: it is only put
 * back into its source's buffer if it belongs to a window not closed yet (see WindowAligner.refill), moving no
 * watermark and closing nothing. A symbol, so it travels through the JPEG decoder's copy of an event (object spread
 * copies own symbol keys) and is never sent anywhere.
 */
export const REFILL: unique symbol = Symbol('braid.refill');

export const isRefill = (input: unknown): boolean =>
  typeof input === 'object' && input !== null && (input as { [REFILL]?: unknown })[REFILL] === true;

/** JSON-safe: ±Infinity as null. */
export const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null);
