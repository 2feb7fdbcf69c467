import type { AnySourceEvent, Modality } from '../core/events.js';
import type { Micros } from '../core/time.js';

export interface WindowBounds {
  readonly streamId: string;
  readonly index: number;
  readonly start: Micros;
  readonly end: Micros;
}

/**
 * Turns one modality's events of one closed window into that window's content for the modality. The aligner calls
 * it once per modality present in the window, with the events sorted by (time, seq) — so a floating-point fold over
 * them gives the same bits whatever order the events arrived in. Implementations must be pure: a window's content
 * depends on that window's events only (remembering is the GRU's job).
 */
export interface WindowAggregator<C> {
  aggregate(modality: Modality, events: readonly AnySourceEvent[], window: WindowBounds): C;
}

/** The default aggregator: a window keeps its raw events. */
export const collectEvents: WindowAggregator<readonly AnySourceEvent[]> = {
  aggregate: (_modality, events) => events,
};
