import { InvalidEventError, InvalidOptionError } from '../core/errors.js';
import {
  type AnySourceEvent,
  capturedThrough,
  isModality,
  isStreamControl,
  MODALITIES,
  type Modality,
  payloadBytes,
  type SourceEvent,
  type StreamControl,
  validateEvent,
} from '../core/events.js';
import { MICROS_PER_SECOND, type Micros } from '../core/time.js';
import { emptyModalityRecord, type Window } from '../core/window.js';
import { type AlignOptions, type ResolvedAlignOptions, resolveAlignOptions } from './options.js';
import { SourceBuffer } from './source-buffer.js';
import { type AlignerStreamState, alignerStreamStateSchema, finiteOrNull } from './stream-state.js';

/** An event for a window that had already closed; it goes to the late side output, never silently away. */
export interface LateEvent {
  readonly event: AnySourceEvent;
  /** End of the last window of the stream that had closed when the event arrived. */
  readonly closedUpTo: Micros;
}

/** Input that was refused, with a stable `reason` (the counter key) and a message naming what was wrong. */
export interface RejectedInput {
  readonly input: unknown;
  readonly reason: string;
  readonly field: string;
  readonly message: string;
}

export interface AlignStats {
  eventsIn: number;
  /** eventsIn and late, by modality. */
  eventsByModality: Record<Modality, number>;
  lateByModality: Record<Modality, number>;
  windowsOut: number;
  late: number;
  /** Events accepted into open windows that also belonged to already closed (overlapping) windows. */
  partiallyLate: number;
  rejected: Record<string, number>;
  forcedCloses: number;
  idleTransitions: number;
  epochResets: number;
  /** Streams whose timeline started again (`restart` controls). */
  restarts: number;
  /** Windows emitted with some of their data lost (gap controls). */
  partialWindows: number;
  /**
   * Audio frames whose time contradicts the samples of the frame before them (the previous seq, earlier in time) by
   * more than a sample period: stamped later than that frame ends (a gap: nothing was captured between, or the stamps
   * drift) or earlier (an overlap: two sample runs claim the same capture time). Both are accepted — frames are
   * concatenated in time order, gaps not filled — and counted here so a producer's clock that disagrees with its
   * sample count shows. Compared as the frames are released, in (time, seq) order: the counts depend on the frames
   * taken, not on the order they arrived in, and follow the windows (a frame is counted once its windows closed).
   */
  audioGaps: number;
  audioOverlaps: number;
  /** Progress controls (producer timestamp bounds) taken. */
  progress: number;
  streamsOpened: number;
  streamsClosed: number;
  openStreams: number;
  bufferedEvents: number;
  bufferedBytes: number;
}

export interface BufferCount {
  events: number;
  bytes: number;
}
export interface StreamAccount extends BufferCount {
  sources: Partial<Record<Modality, BufferCount>>;
}
export interface BufferAccount extends BufferCount {
  streams: Record<string, StreamAccount>;
}

export interface AlignerSinks<C> {
  window(window: Window<C>): void;
  late(late: LateEvent): void;
  rejected(rejected: RejectedInput): void;
  /** A stream was closed (control, or end of input) after its last window was emitted; its state is gone. */
  closed?(streamId: string): void;
  /** A stream's timeline started again (a `restart` control): later windows may have lower indices. */
  restarted?(streamId: string): void;
}

interface SourceState {
  readonly modality: Modality;
  readonly gating: boolean;
  readonly buffer: SourceBuffer;
  /** Highest originating time seen in the current epoch; -Infinity before the first event. */
  maxTime: number;
  /** Watermark: never moves back, also across an epoch reset. */
  watermark: number;
  idle: boolean;
  /** Spans of capture time whose events were lost ([from, to], from `gap` controls), oldest first. */
  gaps: [number, number][];
  /** Processing time (ms, from the injected clock) of the last event, or of the stream's opening. */
  lastArrivalMs: number;
  /** Highest time among the events put back by {@link WindowAligner.refill} (their own non-monotonic check). */
  refillMax: number;
  /**
   * Audio: capture end of the last frame released (where the next frame should start), NaN when unknown (before the
   * first frame, after an epoch reset or a restart). Saved with the stream's state, so a resumed stream compares on.
   */
  audioEnd: number;
  /** Audio: seq of that frame; only the frame of the next seq is compared (one between may be missing). */
  audioSeq: number;
  /** Audio: [time, seq] of the first frame taken after each epoch reset, until it is released (usually empty). */
  epochStarts: [number, number][];
  /** An epoch reset was taken and no frame since: the next frame taken goes into {@link epochStarts}. */
  epochPending: boolean;
  /** Audio: compares each released frame with the one before it; undefined for other modalities. */
  readonly onRelease: ((event: AnySourceEvent) => void) | undefined;
}

interface StreamState {
  readonly id: string;
  /** Start of this stream's window 0: the options' origin, plus the stream's phase when phases are per stream. */
  readonly origin: number;
  readonly sources: (SourceState | undefined)[];
  /** Lowest window index not closed yet; null until the stream's first window closes. */
  nextWindow: number | null;
  /** End of the last closed window, or -Infinity. */
  closedUpTo: number;
  bufferedEvents: number;
  bufferedBytes: number;
  /** Its producer was cut off: no source goes idle, windows wait for a resume (or the close). */
  suspended: boolean;
  /** Restart controls taken. */
  restarts: number;
}

const MODALITY_INDEX: Record<Modality, number> = { audio: 0, video: 1, text: 2, label: 3 };

/**
 * Event-time windowing for any number of streams, independent of RxJS and of any clock: the operator in
 * align-windows.ts feeds it and drives its idle checks. Windows of a stream close when the stream's watermark — the
 * lowest watermark of its active, non-idle gating sources — passes end + allowed lateness. Window contents depend on
 * event timestamps only, so any interleaving of the same events (each source's own order kept) gives the same
 * windows, as long as no idle timeout or buffer cap fires (those depend on processing time and memory, and say so in
 * `closedBy`).
 */
export class WindowAligner<C> {
  readonly options: ResolvedAlignOptions<C>;
  readonly stats: AlignStats = {
    eventsIn: 0,
    eventsByModality: emptyModalityRecord(0),
    lateByModality: emptyModalityRecord(0),
    windowsOut: 0,
    late: 0,
    partiallyLate: 0,
    rejected: {},
    forcedCloses: 0,
    idleTransitions: 0,
    epochResets: 0,
    restarts: 0,
    partialWindows: 0,
    audioGaps: 0,
    audioOverlaps: 0,
    progress: 0,
    streamsOpened: 0,
    streamsClosed: 0,
    openStreams: 0,
    bufferedEvents: 0,
    bufferedBytes: 0,
  };
  readonly #streams = new Map<string, StreamState>();
  readonly #sinks: AlignerSinks<C>;
  readonly #nowMs: () => number;
  readonly #gating: boolean[];

  constructor(options: AlignOptions<C>, sinks: AlignerSinks<C>, nowMs: () => number = () => 0) {
    this.options = resolveAlignOptions(options);
    this.#sinks = sinks;
    this.#nowMs = nowMs;
    this.#gating = MODALITIES.map((m) => !this.options.nonGating.includes(m));
  }

  get streamIds(): string[] {
    return [...this.#streams.keys()];
  }

  /** Takes one event or control message; windows, late events and rejections go to the sinks synchronously. */
  push(input: unknown): void {
    if (isStreamControl(input)) {
      this.#control(input);
      return;
    }
    let event: AnySourceEvent;
    try {
      event = validateEvent(input, this.options.eventLimits);
    } catch (error) {
      if (error instanceof InvalidEventError)
        return this.#reject(input, error.reason, error.field, error.message);
      throw error;
    }
    let stream = this.#streams.get(event.streamId);
    if (stream === undefined) {
      if (this.#streams.size >= this.options.maxStreams)
        return this.#reject(
          input,
          'too_many_streams',
          'streamId',
          `stream "${event.streamId}" refused: ${this.options.maxStreams} streams are open (maxStreams)`,
        );
      stream = this.#openStream(event.streamId, this.options.expectedModalities);
    }
    const source = stream.sources[MODALITY_INDEX[event.modality]] ?? this.#addSource(stream, event.modality);
    source.lastArrivalMs = this.#nowMs();
    if (source.idle) source.idle = false;

    if (event.time < source.maxTime - this.options.outOfOrderness)
      return this.#reject(
        input,
        'non_monotonic',
        'time',
        `${event.streamId}/${event.modality}: time ${event.time} µs is more than outOfOrderness (${this.options.outOfOrderness} µs) before the latest ${source.maxTime} µs (sent too far out of order, or sent again after it was taken); if the clock jumped, restart the stream (protocol: {"type":"reset"})`,
      );
    if (stream.nextWindow !== null && event.time < stream.origin + stream.nextWindow * this.options.hop) {
      this.stats.late++;
      this.stats.lateByModality[event.modality]++;
      this.#sinks.late({ event, closedUpTo: stream.closedUpTo });
      return;
    }
    if (!source.buffer.insert(event))
      return this.#reject(
        input,
        'duplicate',
        'seq',
        `${event.streamId}/${event.modality}: an event with time ${event.time} and seq ${event.seq} was already accepted`,
      );
    if (source.epochPending) {
      source.epochPending = false;
      source.epochStarts.push([event.time, event.seq]);
    }
    if (event.time < stream.closedUpTo) this.stats.partiallyLate++;
    this.stats.eventsIn++;
    this.stats.eventsByModality[event.modality]++;
    const bytes = payloadBytes(event);
    stream.bufferedEvents++;
    stream.bufferedBytes += bytes;
    this.stats.bufferedEvents++;
    this.stats.bufferedBytes += bytes;
    if (event.time > source.maxTime) {
      source.maxTime = event.time;
      const watermark = event.time - this.options.outOfOrderness;
      if (watermark > source.watermark) {
        source.watermark = watermark;
        this.#closeReady(stream);
      }
    }
    this.#enforceCaps(stream);
  }

  /**
   * Marks sources that sent nothing for the idle timeout as idle and closes what that releases. Returns the
   * processing time (ms) of the next check that could change anything, or Infinity.
   */
  checkIdle(): number {
    const timeoutMs = this.options.idleTimeout / 1000;
    if (!Number.isFinite(timeoutMs)) return Number.POSITIVE_INFINITY;
    const now = this.#nowMs();
    let next = Number.POSITIVE_INFINITY;
    for (const stream of this.#streams.values()) {
      if (stream.suspended) continue;
      let changed = false;
      for (const source of stream.sources) {
        if (source === undefined || source.idle || !source.gating) continue;
        const due = source.lastArrivalMs + timeoutMs;
        if (due <= now) {
          source.idle = true;
          this.stats.idleTransitions++;
          changed = true;
        } else if (due < next) next = due;
      }
      if (changed) this.#closeReady(stream);
    }
    return next;
  }

  /**
   * How far each modality's watermark trails `now` (µs of capture time), at worst over the open streams: how long a
   * window of it waits to close. Modalities no stream has (or whose sources have no watermark yet) are left out.
   */
  watermarkLag(now: number): Partial<Record<Modality, number>> {
    const lag: Partial<Record<Modality, number>> = {};
    for (const stream of this.#streams.values())
      for (const source of stream.sources) {
        if (source === undefined || !Number.isFinite(source.watermark)) continue;
        const behind = now - source.watermark;
        if (!(behind <= (lag[source.modality] ?? Number.NEGATIVE_INFINITY))) lag[source.modality] = behind;
      }
    return lag;
  }

  /**
   * The aligner's buffer accounting beside a fresh count of what its buffers hold, per source, per stream and in
   * total. The two must always be equal; a difference is a bug (tests audit it over long random runs).
   */
  bufferAccounting(): { counted: BufferAccount; recounted: BufferAccount } {
    const counted: BufferAccount = {
      events: this.stats.bufferedEvents,
      bytes: this.stats.bufferedBytes,
      streams: {},
    };
    const recounted: BufferAccount = { events: 0, bytes: 0, streams: {} };
    for (const stream of this.#streams.values()) {
      const c: StreamAccount = { events: stream.bufferedEvents, bytes: stream.bufferedBytes, sources: {} };
      const r: StreamAccount = { events: 0, bytes: 0, sources: {} };
      for (const source of stream.sources) {
        if (source === undefined) continue;
        c.sources[source.modality] = { events: source.buffer.size, bytes: source.buffer.bytes };
        const actual = source.buffer.recount();
        r.sources[source.modality] = actual;
        r.events += actual.events;
        r.bytes += actual.bytes;
      }
      counted.streams[stream.id] = c;
      recounted.streams[stream.id] = r;
      recounted.events += r.events;
      recounted.bytes += r.bytes;
    }
    return { counted, recounted };
  }

  /**
   * A stream's state without its buffered events (see AlignerStreamState), or undefined when it is not open. With
   * the events of capture time at or after `nextStart` put back ({@link refill}), {@link importStream} gives an
   * aligner that goes on exactly as this one would from here.
   */
  exportStream(streamId: string): AlignerStreamState | undefined {
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return undefined;
    const sources = [];
    for (const s of stream.sources)
      if (s !== undefined)
        sources.push({
          modality: s.modality,
          maxTime: finiteOrNull(s.maxTime),
          watermark: finiteOrNull(s.watermark),
          idle: s.idle,
          gaps: s.gaps.map(([from, to]) => [from, to] as const),
          ...(s.modality === 'audio' && {
            audioEnd: finiteOrNull(s.audioEnd),
            audioSeq: finiteOrNull(s.audioSeq),
            ...(s.epochStarts.length > 0 && {
              audioEpochStarts: s.epochStarts.map(([time, seq]) => [time, seq] as const),
            }),
            ...(s.epochPending && { audioEpochPending: true }),
          }),
        });
    return {
      streamId,
      nextWindow: stream.nextWindow,
      nextStart: stream.nextWindow === null ? null : stream.origin + stream.nextWindow * this.options.hop,
      closedUpTo: finiteOrNull(stream.closedUpTo),
      suspended: stream.suspended,
      restarts: stream.restarts,
      sources,
    };
  }

  /**
   * Opens a stream in the state {@link exportStream} gave, with empty buffers: its open windows' events are put back
   * with {@link refill}. Throws when the state is malformed, the stream is open already, or the state was taken on
   * another window grid (another size, hop, origin or phase: `nextStart` would differ).
   */
  importStream(state: unknown): void {
    const parsed = alignerStreamStateSchema.safeParse(state);
    if (!parsed.success)
      throw new InvalidOptionError('state', `is not an aligner state: ${parsed.error.message}`);
    const s = parsed.data;
    if (this.#streams.has(s.streamId))
      throw new InvalidOptionError('state', `stream "${s.streamId}" is open already`);
    const stream = this.#openStream(s.streamId, []);
    const nextStart = s.nextWindow === null ? null : stream.origin + s.nextWindow * this.options.hop;
    if (nextStart !== s.nextStart) {
      this.#streams.delete(s.streamId);
      this.stats.openStreams = this.#streams.size;
      throw new InvalidOptionError(
        'state',
        `aligner state of "${s.streamId}" was saved on another window grid (next window at ${s.nextStart} µs, here ${nextStart} µs)`,
      );
    }
    stream.nextWindow = s.nextWindow;
    stream.closedUpTo = s.closedUpTo ?? Number.NEGATIVE_INFINITY;
    stream.suspended = s.suspended;
    stream.restarts = s.restarts;
    for (const saved of s.sources) {
      const source = this.#addSource(stream, saved.modality);
      source.maxTime = saved.maxTime ?? Number.NEGATIVE_INFINITY;
      source.watermark = saved.watermark ?? Number.NEGATIVE_INFINITY;
      source.idle = saved.idle;
      source.gaps = saved.gaps.map(([from, to]) => [from, to]);
      // A state saved before these were kept leaves the first frame after it uncompared.
      source.audioEnd = saved.audioEnd ?? Number.NaN;
      source.audioSeq = saved.audioSeq ?? Number.NaN;
      source.epochStarts = (saved.audioEpochStarts ?? []).map(([time, seq]) => [time, seq]);
      source.epochPending = saved.audioEpochPending ?? false;
    }
  }

  /**
   * Puts back an input this aligner's stream state (from {@link importStream}) already covers: an event goes into
   * its source's buffer if the original run held it there — capture time at or after the next window's start, not
   * a duplicate, not out of order beyond the bound among the refilled events (an epoch `reset` control starts that
   * check again) — and nothing else happens: no watermark moves, no window closes, nothing is counted or reported
   * (the original run did that). Anything else is ignored.
   */
  refill(input: unknown): void {
    if (isStreamControl(input)) {
      if (input.control !== 'reset' || !isModality(input.modality)) return;
      const source = this.#streams.get(input.streamId)?.sources[MODALITY_INDEX[input.modality]];
      if (source) source.refillMax = Number.NEGATIVE_INFINITY;
      return;
    }
    let event: AnySourceEvent;
    try {
      event = validateEvent(input, this.options.eventLimits);
    } catch {
      return;
    }
    const stream = this.#streams.get(event.streamId);
    const source = stream?.sources[MODALITY_INDEX[event.modality]];
    if (stream === undefined || source === undefined) return;
    if (event.time < source.refillMax - this.options.outOfOrderness) return;
    if (stream.nextWindow !== null && event.time < stream.origin + stream.nextWindow * this.options.hop)
      return;
    if (!source.buffer.insert(event)) return;
    if (event.time > source.refillMax) source.refillMax = event.time;
    const bytes = payloadBytes(event);
    stream.bufferedEvents++;
    stream.bufferedBytes += bytes;
    this.stats.bufferedEvents++;
    this.stats.bufferedBytes += bytes;
  }

  /** Closes every open window of every stream (end of input). */
  flushAll(): void {
    for (const stream of [...this.#streams.values()]) this.#closeStream(stream);
  }

  #control(control: StreamControl): void {
    const { streamId } = control;
    if (typeof streamId !== 'string' || streamId.length === 0)
      return this.#reject(
        control,
        'missing_stream_id',
        'streamId',
        'control message needs a non-empty streamId',
      );
    const stream = this.#streams.get(streamId);
    switch (control.control) {
      case 'open': {
        const modalities = control.modalities ?? this.options.expectedModalities;
        const bad = modalities.find((m) => !isModality(m));
        if (bad !== undefined)
          return this.#reject(
            control,
            'unknown_modality',
            'modalities',
            `open: unknown modality ${JSON.stringify(bad)}`,
          );
        if (stream !== undefined) {
          for (const m of modalities)
            if (stream.sources[MODALITY_INDEX[m]] === undefined) this.#addSource(stream, m);
          return;
        }
        if (this.#streams.size >= this.options.maxStreams)
          return this.#reject(
            control,
            'too_many_streams',
            'streamId',
            `open "${streamId}" refused: maxStreams reached`,
          );
        this.#openStream(streamId, modalities);
        return;
      }
      case 'close':
        if (stream !== undefined) this.#closeStream(stream);
        return;
      case 'restart':
        if (stream !== undefined) this.#restartStream(stream, control);
        return;
      case 'suspend':
        if (stream !== undefined) stream.suspended = true;
        return;
      case 'resume': {
        if (stream === undefined) return;
        stream.suspended = false;
        // The gap counts as arrival: the resumed producer gets a full idle timeout before its sources go idle.
        const now = this.#nowMs();
        for (const source of stream.sources) if (source) source.lastArrivalMs = now;
        return;
      }
      case 'gap': {
        const source = stream?.sources[MODALITY_INDEX[control.modality]];
        if (source === undefined) return;
        if (!(control.to > control.from))
          return this.#reject(
            control,
            'bad_gap',
            'to',
            `gap: to (${control.to}) must be after from (${control.from})`,
          );
        source.gaps.push([control.from, control.to]);
        return;
      }
      case 'reset': {
        if (!isModality(control.modality))
          return this.#reject(
            control,
            'unknown_modality',
            'modality',
            `reset: unknown modality ${JSON.stringify(control.modality)}`,
          );
        const source = stream?.sources[MODALITY_INDEX[control.modality]];
        if (source === undefined) return;
        // A new epoch forgets the highest time seen, so earlier timestamps are no longer non-monotonic; the
        // watermark stays, so windows already closed stay closed and their stragglers count as late.
        source.maxTime = Number.NEGATIVE_INFINITY;
        source.epochPending = source.modality === 'audio';
        this.stats.epochResets++;
        return;
      }
      case 'progress': {
        const { time } = control;
        if (typeof time !== 'number' || !Number.isFinite(time))
          return this.#reject(
            control,
            'non_finite_time',
            'time',
            `progress: time must be a finite number of µs, got ${String(time)}`,
          );
        if (stream === undefined) return;
        const now = this.#nowMs();
        for (const source of stream.sources) {
          if (source === undefined) continue;
          source.lastArrivalMs = now;
          source.idle = false;
          if (time > source.watermark) source.watermark = time;
        }
        this.stats.progress++;
        this.#closeReady(stream);
        return;
      }
      default:
        return this.#reject(
          control,
          'unknown_control',
          'control',
          `unknown control ${JSON.stringify((control as { control: unknown }).control)}`,
        );
    }
  }

  /**
   * Counts an audio frame that does not start where the frame of the seq before it ended (see AlignStats.audioGaps).
   * Only a frame that follows that one in time and seq is compared: a seq skipped (a frame lost, or still to come out
   * of order) explains a gap, and is not a clock's contradiction.
   */
  #checkAudioContinuity(source: SourceState, event: SourceEvent<'audio'>): void {
    // The first frame taken after an epoch reset starts a new run of samples: nothing before it to contradict.
    const epochStart = source.epochStarts.length > 0 && takeEpochStart(source.epochStarts, event);
    if (!epochStart && event.seq === source.audioSeq + 1) {
      // A sample period of slack: times from a sample count are floored to whole µs.
      const slack = Math.ceil(MICROS_PER_SECOND / event.payload.sampleRate);
      const offset = event.time - source.audioEnd;
      if (offset > slack) this.stats.audioGaps++;
      else if (offset < -slack) this.stats.audioOverlaps++;
    }
    source.audioEnd = capturedThrough(event);
    source.audioSeq = event.seq;
  }

  #reject(input: unknown, reason: string, field: string, message: string): void {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    this.#sinks.rejected({ input, reason, field, message });
  }

  #openStream(id: string, modalities: readonly Modality[]): StreamState {
    const { origin, hop, phase } = this.options;
    const stream: StreamState = {
      id,
      origin: streamOrigin(id, { origin, hop, phase }),
      sources: [undefined, undefined, undefined, undefined],
      nextWindow: null,
      closedUpTo: Number.NEGATIVE_INFINITY,
      bufferedEvents: 0,
      bufferedBytes: 0,
      suspended: false,
      restarts: 0,
    };
    for (const m of modalities) this.#addSource(stream, m);
    this.#streams.set(id, stream);
    this.stats.streamsOpened++;
    this.stats.openStreams = this.#streams.size;
    return stream;
  }

  #addSource(stream: StreamState, modality: Modality): SourceState {
    const source: SourceState = {
      modality,
      gating: this.#gating[MODALITY_INDEX[modality]]!,
      buffer: new SourceBuffer(),
      maxTime: Number.NEGATIVE_INFINITY,
      watermark: Number.NEGATIVE_INFINITY,
      idle: false,
      gaps: [],
      lastArrivalMs: this.#nowMs(),
      refillMax: Number.NEGATIVE_INFINITY,
      audioEnd: Number.NaN,
      audioSeq: Number.NaN,
      epochStarts: [],
      epochPending: false,
      onRelease:
        modality === 'audio'
          ? (event) => this.#checkAudioContinuity(source, event as SourceEvent<'audio'>)
          : undefined,
    };
    stream.sources[MODALITY_INDEX[modality]] = source;
    return source;
  }

  /**
   * A new timeline for a stream whose clock jumped: what it buffered was stamped by the bad clock, so it is discarded
   * (counted and reported, never emitted), and its grid and watermarks start afresh. The stream stays open.
   */
  #restartStream(stream: StreamState, control: StreamControl): void {
    let discarded = 0;
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const source of stream.sources) {
      if (source === undefined) continue;
      first = Math.min(first, source.buffer.firstTime());
      last = Math.max(last, source.buffer.lastTime());
      discarded += source.buffer.size;
      source.buffer.clear();
      source.maxTime = Number.NEGATIVE_INFINITY;
      source.audioEnd = Number.NaN;
      source.audioSeq = Number.NaN;
      source.epochStarts = [];
      source.epochPending = false;
      source.watermark = Number.NEGATIVE_INFINITY;
      source.idle = false;
      source.gaps = [];
      source.lastArrivalMs = this.#nowMs();
    }
    this.stats.bufferedEvents -= stream.bufferedEvents;
    this.stats.bufferedBytes -= stream.bufferedBytes;
    stream.bufferedEvents = 0;
    stream.bufferedBytes = 0;
    stream.nextWindow = null;
    stream.closedUpTo = Number.NEGATIVE_INFINITY;
    stream.restarts++;
    this.stats.restarts++;
    if (discarded > 0) {
      this.stats.rejected['discarded_by_restart'] =
        (this.stats.rejected['discarded_by_restart'] ?? 0) + discarded;
      this.#sinks.rejected({
        input: control,
        reason: 'discarded_by_restart',
        field: 'control',
        message: `restart of "${stream.id}": ${discarded} buffered events (capture times ${first}..${last} µs) discarded`,
      });
    }
    this.#sinks.restarted?.(stream.id);
  }

  #closeStream(stream: StreamState): void {
    this.#emitUpTo(stream, Number.POSITIVE_INFINITY, 'flush');
    for (const source of stream.sources) source?.buffer.clear();
    this.stats.bufferedEvents -= stream.bufferedEvents;
    this.stats.bufferedBytes -= stream.bufferedBytes;
    this.#streams.delete(stream.id);
    this.stats.streamsClosed++;
    this.stats.openStreams = this.#streams.size;
    this.#sinks.closed?.(stream.id);
  }

  /** The stream's watermark: the lowest of its active gating sources; if all of them are idle, the highest. */
  #streamWatermark(stream: StreamState): number {
    let low = Number.POSITIVE_INFINITY;
    let high = Number.NEGATIVE_INFINITY;
    let active = 0;
    let anyGating = false;
    for (const source of stream.sources) {
      if (source === undefined || !source.gating) continue;
      anyGating = true;
      if (source.watermark > high) high = source.watermark;
      if (source.idle) continue;
      active++;
      if (source.watermark < low) low = source.watermark;
    }
    if (active > 0) return low;
    if (anyGating) return high;
    for (const source of stream.sources)
      if (source !== undefined && source.watermark > high) high = source.watermark;
    return high;
  }

  #closeReady(stream: StreamState): void {
    const watermark = this.#streamWatermark(stream);
    if (watermark === Number.NEGATIVE_INFINITY) return;
    const idle = stream.sources.some((s) => s?.idle === true && s.gating);
    this.#emitUpTo(stream, watermark - this.options.allowedLateness, idle ? 'idle' : 'watermark');
  }

  /** Emits, in index order, every window with content whose end <= limit; releases what no open window needs. */
  #emitUpTo(stream: StreamState, limit: number, closedBy: Window['closedBy']): void {
    const { size, hop } = this.options;
    const { origin } = stream;
    let k = stream.nextWindow;
    for (;;) {
      const first = this.#firstPendingTime(stream);
      if (first === Number.POSITIVE_INFINITY) break;
      // Skip windows that hold nothing: jump to the first window that contains the earliest pending event.
      const kFirst = Math.floor((first - size - origin) / hop) + 1;
      if (k === null || k < kFirst) k = kFirst;
      const start = origin + k * hop;
      const end = start + size;
      if (end > limit) break;
      this.#emitWindow(stream, k, start, end, closedBy);
      k++;
      stream.nextWindow = k;
      stream.closedUpTo = end;
      this.#release(stream, origin + k * hop);
    }
    if (limit === Number.POSITIVE_INFINITY || k === null) return;
    // Windows ending at or before the limit are closed even when they held nothing: what arrives for them is late.
    const kLimit = Math.floor((limit - size - origin) / hop) + 1;
    if (kLimit > (stream.nextWindow ?? Number.NEGATIVE_INFINITY)) {
      stream.nextWindow = kLimit;
      stream.closedUpTo = Math.max(stream.closedUpTo, origin + (kLimit - 1) * hop + size);
    }
  }

  #firstPendingTime(stream: StreamState): number {
    let first = Number.POSITIVE_INFINITY;
    for (const source of stream.sources) {
      if (source === undefined) continue;
      const t = source.buffer.firstTime();
      if (t < first) first = t;
    }
    return first;
  }

  #emitWindow(
    stream: StreamState,
    index: number,
    start: number,
    end: number,
    closedBy: Window['closedBy'],
  ): void {
    const contents: Partial<Record<Modality, C>> = {};
    const counts = emptyModalityRecord(0);
    const present = emptyModalityRecord(false);
    const missing: Modality[] = [];
    const bounds = { streamId: stream.id, index, start, end };
    let partial = false;
    for (const source of stream.sources) {
      if (source === undefined) continue;
      if (source.idle && source.gating) missing.push(source.modality);
      for (const [from, to] of source.gaps) if (from < end && to > start) partial = true;
      const events = source.buffer.range(start, end);
      if (events.length === 0) continue;
      counts[source.modality] = events.length;
      present[source.modality] = true;
      contents[source.modality] = this.options.aggregator.aggregate(source.modality, events, bounds);
    }
    this.stats.windowsOut++;
    this.#sinks.window({
      streamId: stream.id,
      index,
      start,
      end,
      contents,
      counts,
      present,
      missing,
      closedBy,
      ...(partial && { partial: true as const }),
    });
    if (partial) this.stats.partialWindows++;
  }

  #release(stream: StreamState, before: number): void {
    for (const source of stream.sources) {
      if (source === undefined) continue;
      // A gap ending before every open window is of no more use.
      while (source.gaps.length > 0 && source.gaps[0]![1] <= before) source.gaps.shift();
      // The stream and total counters follow the buffer's own size and bytes, measured before and after, rather
      // than a count returned by the buffer: they cannot drift from what is really held.
      const { buffer } = source;
      const eventsBefore = buffer.size;
      const bytesBefore = buffer.bytes;
      buffer.releaseBefore(before, source.onRelease);
      const events = eventsBefore - buffer.size;
      if (events === 0) continue;
      const bytes = bytesBefore - buffer.bytes;
      stream.bufferedEvents -= events;
      stream.bufferedBytes -= bytes;
      this.stats.bufferedEvents -= events;
      this.stats.bufferedBytes -= bytes;
    }
  }

  /** Buffer caps: close the oldest open window early (counted) until the stream and the total are under their caps. */
  #enforceCaps(stream: StreamState): void {
    const o = this.options;
    while (stream.bufferedEvents > o.maxStreamBufferEvents || stream.bufferedBytes > o.maxStreamBufferBytes)
      if (!this.#forceCloseOldest(stream)) break;
    while (this.stats.bufferedBytes > o.maxTotalBufferBytes) {
      let fullest: StreamState | undefined;
      for (const s of this.#streams.values())
        if (fullest === undefined || s.bufferedBytes > fullest.bufferedBytes) fullest = s;
      if (fullest === undefined || !this.#forceCloseOldest(fullest)) break;
    }
  }

  #forceCloseOldest(stream: StreamState): boolean {
    const first = this.#firstPendingTime(stream);
    if (first === Number.POSITIVE_INFINITY) return false;
    const { size, hop } = this.options;
    const { origin } = stream;
    const k = Math.max(
      stream.nextWindow ?? Number.NEGATIVE_INFINITY,
      Math.floor((first - size - origin) / hop) + 1,
    );
    this.stats.forcedCloses++;
    this.#emitUpTo(stream, origin + k * hop + size, 'buffer_cap');
    return true;
  }
}

/** Removes [time, seq] of `event` from the epoch starts; whether it was one. */
function takeEpochStart(starts: [number, number][], event: AnySourceEvent): boolean {
  const i = starts.findIndex(([time, seq]) => time === event.time && seq === event.seq);
  if (i >= 0) starts.splice(i, 1);
  return i >= 0;
}

/**
 * Start of a stream's window 0: windows are [o + k·hop, o + k·hop + size) for every integer k. What `ready` tells a
 * producer (`windowing.origin`), so it can end its audio frames where windows end.
 */
export function streamOrigin(
  streamId: string,
  grid: { readonly origin: number; readonly hop: number; readonly phase: 'aligned' | 'stream' },
): number {
  return grid.origin + (grid.phase === 'stream' ? streamPhase(streamId, grid.hop) : 0);
}

/**
 * A stream's window phase in [0, hop): a hash of its id (FNV-1a), so each stream keeps the same grid across runs and
 * replays while the streams of a server close their windows at different moments instead of all at once.
 */
export function streamPhase(streamId: string, hop: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < streamId.length; i++) hash = Math.imul(hash ^ streamId.charCodeAt(i), 0x01000193) >>> 0;
  return hash % hop;
}
