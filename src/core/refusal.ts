import type { Modality } from './events.js';
import { isModality } from './events.js';
import type { Micros } from './time.js';

/**
 * Input that a stage refused or dropped, with what its sender needs to find it (stream, modality, seq, capture time)
 * and a stable `reason` (the counter key). The server sends these back to the producer of the stream; nothing
 * accepted disappears without one.
 */
export interface InputRefusal {
  readonly streamId: string;
  readonly reason: string;
  readonly message: string;
  readonly modality?: Modality;
  readonly seq?: number;
  readonly time?: Micros;
  /** For windows dropped in front of the model. */
  readonly windowIndex?: number;
}

/** Where refusals go; optional everywhere, since counters are kept either way. */
export type RefusalListener = (refusal: InputRefusal) => void;

/** The identity of an event-like value (it may be malformed: it is what a producer sent). */
export function refusalOf(input: unknown, reason: string, message: string): InputRefusal | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const e = input as { streamId?: unknown; modality?: unknown; seq?: unknown; time?: unknown };
  if (typeof e.streamId !== 'string' || e.streamId.length === 0) return undefined;
  return {
    streamId: e.streamId,
    reason,
    message,
    ...(isModality(e.modality) && { modality: e.modality }),
    ...(typeof e.seq === 'number' && Number.isFinite(e.seq) && { seq: e.seq }),
    ...(typeof e.time === 'number' && Number.isFinite(e.time) && { time: e.time }),
  };
}
