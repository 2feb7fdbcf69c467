import { InvalidOptionError } from '../core/errors.js';
import { DEFAULT_EVENT_LIMITS, type EventLimits, isModality, type Modality } from '../core/events.js';
import { type Micros, ms } from '../core/time.js';
import type { WindowAggregator } from './aggregator.js';

export interface AlignOptions<C> {
  /** Window length in µs. */
  readonly size: Micros;
  /** Distance between window starts in µs; equal to `size` (tumbling) by default, at most `size` (hopping). */
  readonly hop?: Micros;
  /** Window k covers [origin + k·hop, origin + k·hop + size). Default 0: windows align to the epoch. */
  readonly origin?: Micros;
  /**
   * `aligned` (default): every stream uses `origin`, so all streams' windows line up. `stream`: each stream's grid is
   * shifted by a phase in [0, hop) hashed from its id (see streamPhase), so a server with many streams closes their
   * windows at different moments rather than in one burst; each stream's windows stay fixed across runs.
   */
  readonly phase?: 'aligned' | 'stream';
  /**
   * How far out of order a source's own events may arrive, in µs. A source's watermark is its highest time seen
   * minus this; an event older than its source's watermark is rejected as `non_monotonic`.
   */
  readonly outOfOrderness?: Micros;
  /** Extra µs every source's watermark must pass beyond a window's end before the window closes. */
  readonly allowedLateness?: Micros;
  /**
   * Processing-time µs after which a source that sent nothing is idle: it stops holding its stream's windows back
   * and is listed as missing in the windows that close meanwhile. Infinity (default) disables it.
   */
  readonly idleTimeout?: Micros;
  /** Modalities every stream is expected to send, for streams that do not declare theirs with an `open` control. */
  readonly expectedModalities?: readonly Modality[];
  /** Modalities that never hold a window back (sparse ground truth such as labels). */
  readonly nonGating?: readonly Modality[];
  /** Per-stream cap on buffered payload bytes and events; past it the stream's oldest open window is closed early. */
  readonly maxStreamBufferBytes?: number;
  readonly maxStreamBufferEvents?: number;
  /** Cap on buffered payload bytes over all streams; past it the fullest stream's oldest window is closed early. */
  readonly maxTotalBufferBytes?: number;
  /** Streams open at once; events of further streams are rejected as `too_many_streams`. */
  readonly maxStreams?: number;
  readonly eventLimits?: EventLimits;
  readonly aggregator: WindowAggregator<C>;
}

export type ResolvedAlignOptions<C> = Required<AlignOptions<C>>;

export const ALIGN_DEFAULTS = {
  origin: 0,
  phase: 'aligned' as 'aligned' | 'stream',
  outOfOrderness: ms(20),
  allowedLateness: 0,
  idleTimeout: Number.POSITIVE_INFINITY,
  expectedModalities: [] as readonly Modality[],
  nonGating: ['label'] as readonly Modality[],
  maxStreamBufferBytes: 16 * 1024 * 1024,
  maxStreamBufferEvents: 20_000,
  maxTotalBufferBytes: 512 * 1024 * 1024,
  maxStreams: 10_000,
  eventLimits: DEFAULT_EVENT_LIMITS,
};

function nonNegativeInteger(name: string, value: number, allowInfinity = false): void {
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return;
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InvalidOptionError(name, `must be a non-negative integer (µs or count), got ${value}`);
}

/** Fills defaults and rejects impossible combinations with an error naming the option and the fix. */
export function resolveAlignOptions<C>(options: AlignOptions<C>): ResolvedAlignOptions<C> {
  const o = { ...ALIGN_DEFAULTS, hop: options.size, ...options } as ResolvedAlignOptions<C>;
  if (!Number.isSafeInteger(o.size) || o.size <= 0)
    throw new InvalidOptionError('size', `must be a positive integer number of µs, got ${o.size}`);
  if (!Number.isSafeInteger(o.hop) || o.hop <= 0 || o.hop > o.size)
    throw new InvalidOptionError(
      'hop',
      `must be a positive integer number of µs no larger than size (${o.size}), got ${o.hop}`,
    );
  if (o.phase !== 'aligned' && o.phase !== 'stream')
    throw new InvalidOptionError('phase', `must be "aligned" or "stream", got ${JSON.stringify(o.phase)}`);
  if (!Number.isSafeInteger(o.origin))
    throw new InvalidOptionError('origin', `must be an integer number of µs, got ${o.origin}`);
  nonNegativeInteger('outOfOrderness', o.outOfOrderness);
  nonNegativeInteger('allowedLateness', o.allowedLateness);
  nonNegativeInteger('idleTimeout', o.idleTimeout, true);
  if (o.idleTimeout === 0)
    throw new InvalidOptionError('idleTimeout', 'must be positive (or Infinity to disable)');
  for (const name of [
    'maxStreamBufferBytes',
    'maxStreamBufferEvents',
    'maxTotalBufferBytes',
    'maxStreams',
  ] as const) {
    nonNegativeInteger(name, o[name]);
    if (o[name] === 0) throw new InvalidOptionError(name, 'must be at least 1');
  }
  for (const name of ['expectedModalities', 'nonGating'] as const)
    for (const m of o[name])
      if (!isModality(m)) throw new InvalidOptionError(name, `unknown modality ${JSON.stringify(m)}`);
  if (typeof o.aggregator?.aggregate !== 'function')
    throw new InvalidOptionError(
      'aggregator',
      'must be a WindowAggregator with an aggregate(modality, events, window) method',
    );
  return o;
}
