import { z } from 'zod';
import { InvalidOptionError } from '../core/errors.js';
import { MODALITIES, type Modality } from '../core/events.js';
import { type Micros, ms } from '../core/time.js';

/**
 * The event-time windowing of braid's pipeline, in one place: the live default, its schema, and how a model's saved
 * copy is read. A model carries the windowing it was trained with (`model.json` → `windowing`); serve, replay and
 * live run with it, and `braid eval` scores with it, so a model is always windowed as it was trained.
 */
export interface WindowingConfig {
  readonly size: Micros;
  readonly hop: Micros;
  readonly outOfOrderness: Micros;
  readonly allowedLateness: Micros;
  /** Processing-time µs after which a silent source stops holding windows back; Infinity disables it. */
  readonly idleTimeout: Micros;
  /** Sparse modalities never hold a window back: their events count if they arrive before it closes. */
  readonly nonGating: readonly Modality[];
  /** Per-stream window phase (see AlignOptions.phase). */
  readonly phase: 'aligned' | 'stream';
}

/**
 * 500 ms tumbling windows. A window closes when every gating modality has passed its end (40 ms of jitter allowed),
 * or at once when the producer sends a progress bound past it (the demo page does, every 20 ms); a modality silent
 * for 1 s of wall time stops holding windows. Text and labels are sparse: they never hold a window back. Each
 * stream's window grid has its own phase, hashed from its id, so a server's streams do not all close a window at the
 * same instant (a burst of featurization and one big step) but spread over the hop.
 */
export const DEFAULT_WINDOWING: WindowingConfig = {
  size: ms(500),
  hop: ms(500),
  outOfOrderness: ms(40),
  allowedLateness: 0,
  idleTimeout: ms(1000),
  nonGating: ['text', 'label'],
  phase: 'stream',
};

const micros = z.number().int().nonnegative();

/**
 * A windowing as saved in JSON (model.json, training-report.json). JSON has no Infinity: a disabled idle timeout is
 * saved as null. `phase` may be absent in a copy written before per-stream phases existed, when every grid was
 * aligned to the epoch, so absent means `aligned`.
 */
export const savedWindowingSchema = z
  .object({
    size: micros.positive(),
    hop: micros.positive(),
    outOfOrderness: micros,
    allowedLateness: micros,
    idleTimeout: z.number().positive().nullable(),
    nonGating: z.array(z.enum(MODALITIES)),
    phase: z.enum(['aligned', 'stream']).default('aligned'),
  })
  .strict()
  .refine((w) => w.hop <= w.size, { path: ['hop'], message: 'must be at most size' });

export type SavedWindowing = z.input<typeof savedWindowingSchema>;

/** Checks a saved windowing; throws an InvalidOptionError naming `option` and every field that is wrong. */
export function parseWindowing(value: unknown, option = 'windowing'): WindowingConfig {
  const parsed = savedWindowingSchema.safeParse(value);
  if (!parsed.success)
    throw new InvalidOptionError(
      option,
      `its saved windowing is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(windowing)'}: ${i.message}`).join('; ')}`,
    );
  const { idleTimeout, ...rest } = parsed.data;
  return { ...rest, idleTimeout: idleTimeout ?? Number.POSITIVE_INFINITY };
}

/** The JSON form of a windowing (Infinity as null), as {@link parseWindowing} reads it back. */
export function saveWindowing(windowing: WindowingConfig): SavedWindowing {
  const { idleTimeout, nonGating, ...rest } = windowing;
  return {
    ...rest,
    nonGating: [...nonGating],
    idleTimeout: Number.isFinite(idleTimeout) ? idleTimeout : null,
  };
}

export interface ModelWindowing {
  readonly windowing: WindowingConfig;
  /** `model`: saved with the model; `default`: the model has none (trained before models carried it). */
  readonly source: 'model' | 'default';
}

/**
 * The windowing a model runs with: its saved copy (checked: an invalid one is an error, never replaced), or, for a
 * model saved before models carried one, the live default — `source` says which, so callers can say so.
 */
export function modelWindowing(saved: unknown): ModelWindowing {
  if (saved === undefined) return { windowing: DEFAULT_WINDOWING, source: 'default' };
  return { windowing: parseWindowing(saved, 'model'), source: 'model' };
}

/** One line for logs: `500 ms windows, hop 500 ms, phase stream, ...`. */
export function describeWindowing(w: WindowingConfig): string {
  const idle = Number.isFinite(w.idleTimeout) ? `${w.idleTimeout / 1000} ms` : 'off';
  return `${w.size / 1000} ms windows, hop ${w.hop / 1000} ms, phase ${w.phase}, out-of-orderness ${w.outOfOrderness / 1000} ms, lateness ${w.allowedLateness / 1000} ms, idle timeout ${idle}, non-gating ${w.nonGating.join('+') || 'none'}`;
}
