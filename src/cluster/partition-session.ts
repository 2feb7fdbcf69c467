import { Subject, type Subscription } from 'rxjs';
import { type AlignerStreamState, REFILL } from '../align/stream-state.js';
import { isStreamControl, type StreamInput } from '../core/events.js';
import { FlowCredit } from '../core/flow-credit.js';
import type { Logger } from '../core/logger.js';
import type { Prediction } from '../core/window.js';
import type { FusedWindow } from '../model/runtime.js';
import { decodeFloats, encodeFloats, type ModelStreamState } from '../model/state-store.js';
import type { PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';
import {
  type Checkpoint,
  type PartitionCheckpoint,
  parseCheckpoint,
  type Resume,
  type SessionCheckpoint,
  streamField,
} from './checkpoint.js';
import { decodeInput, encodePrediction, type OutputEntry } from './codec.js';
import { compareIds, nextId, type PartitionKeys } from './partition.js';
import type { BraidRedis } from './redis.js';

export interface SessionOptions {
  readonly partition: number;
  readonly keys: PartitionKeys;
  /** Commands (commits, checkpoint) and a connection of its own for blocking reads. */
  readonly redis: BraidRedis;
  readonly reader: BraidRedis;
  /** The lease's fencing token: every commit is refused once another owner holds the partition. */
  readonly token: string;
  /** The lease's length (ms): a commit that finds it lapsed, and nobody's since, takes it back for this long. */
  readonly leaseMs: number;
  /** A fresh pipeline for this partition's streams (the one `serve` runs, with credits so nothing drops). */
  readonly pipeline: PredictionPipelineRunner;
  readonly log: Logger;
  /** Output entries kept per partition (approximately; gateways read them as they come). */
  readonly outputCap: number;
  /** Told once when the session ends by itself: lease lost, or a failure. */
  readonly ended: (why: string) => void;
}

/** What a partition's run has done, for the worker's /metrics (cumulative over the run). */
export interface SessionCounters {
  entriesRead: number;
  commits: number;
  predictions: number;
  /** Commits refused because another worker holds the lease now (the run ends at the first). */
  fencedCommits: number;
  /** Leases found lapsed (the worker stalled past them) and taken back, no token having been handed out since. */
  leaseReclaims: number;
  /** Commits that failed (Redis away) and were sent again. */
  commitRetries: number;
  /** Sessions of streams carried on from a checkpoint's cut, and sessions run again from their first entry. */
  streamsResumed: number;
  streamsRebuilt: number;
  /** Windows a takeover's aligner made again up to a cut's last committed one, kept from the model. */
  windowsSkipped: number;
  /** Sessions whose cut stopped where it was: a window of theirs got no prediction (see docs/cluster.md, Limits). */
  cutsFrozen: number;
}

export const zeroCounters = (): SessionCounters => ({
  entriesRead: 0,
  commits: 0,
  predictions: 0,
  fencedCommits: 0,
  leaseReclaims: 0,
  commitRetries: 0,
  streamsResumed: 0,
  streamsRebuilt: 0,
  windowsSkipped: 0,
  cutsFrozen: 0,
});

/** Entries read per round, and the wait of a blocking read for new ones (ms). */
const READ_COUNT = 256;
const BLOCK_MS = 500;
/** A commit goes out this often (ms) while predictions wait, or at once once this many wait. */
const COMMIT_MS = 50;
const COMMIT_BATCH = 512;

/** The entry an input came in, and the session it belongs to: attached to the input, read back from the aligner. */
const ENTRY: unique symbol = Symbol('braid.entry');
interface Tag {
  readonly id: string;
  readonly session: Session | undefined;
}
type Tagged = { [ENTRY]?: Tag; [REFILL]?: true };
const tagOf = (input: unknown): Tag | undefined => (input as Tagged | null)?.[ENTRY];

/** A place a session can be carried on from (see Resume): every window made before it is committed once `windows` are. */
interface Cut {
  readonly entry: string;
  readonly refill: string | null;
  readonly windows: number;
  readonly aligner: AlignerStreamState;
}

/** One session of a stream inside a partition: where it began, its predictions, and where it could be carried on from. */
interface Session {
  readonly streamId: string;
  readonly from: string;
  /** Predictions of it the pipeline made (the skipped ones included), or committed before this run when resumed. */
  made: number;
  /** Already committed before this run and made again (a session run again from `from` skips that many). */
  readonly skip: number;
  /** Windows of it the aligner made, in its order (before this run too, when resumed). */
  windows: number;
  /** Windows still to come that ran before the checkpoint (resumed: kept from the model). */
  skipWindows: number;
  /** Windows sent to the model whose predictions have not come out yet, with the restarts then. */
  readonly inFlight: { index: number; restarts: number }[];
  /** Restart controls the aligner took for it. */
  restarts: number;
  /** Its event entries in the aligner's order, with capture times, from the oldest that may still be buffered. */
  readonly events: { id: string; time: number }[];
  eventsHead: number;
  /** The last input the aligner took for it (not a refill). */
  lastEntry: string | undefined;
  /** The aligner has had it open (a session whose every input it refused never is, and never ends there). */
  opened: boolean;
  /** The aligner has closed it. */
  closed: boolean;
  /** Cuts, oldest first; the first is the newest one found valid, at `cutCount` committed predictions. */
  cuts: Cut[];
  cutCount: number;
  /** The model's state after its `made`-th prediction. */
  model: { readonly restarts: number; readonly state: Promise<ModelStreamState> } | undefined;
  /** False once windows and predictions stopped matching one to one (the model dropped one): no more cuts. */
  resumable: boolean;
  /** How a takeover reads this session's entries up to the checkpoint (sessions of the checkpoint only). */
  readonly replay?: { readonly start: string; readonly refillTo: string | undefined };
}

function newSession(streamId: string, from: string, skip = 0): Session {
  return {
    streamId,
    from,
    made: 0,
    skip,
    windows: 0,
    skipWindows: 0,
    inFlight: [],
    restarts: 0,
    events: [],
    eventsHead: 0,
    lastEntry: undefined,
    opened: false,
    closed: false,
    cuts: [],
    cutCount: -1,
    model: undefined,
    resumable: true,
    replay: { start: from, refillTo: undefined },
  };
}

/** A session of the checkpoint: carried on from its cut, or run again from its first entry. */
function sessionOf(streamId: string, saved: SessionCheckpoint, stateSize: number): Session {
  const r = saved.resume;
  if (r === undefined) return newSession(streamId, saved.from, saved.count);
  const cut: Cut = { entry: r.entry, refill: r.refill, windows: r.windows, aligner: r.aligner };
  const model = r.model
    ? {
        restarts: r.model.restarts,
        state: Promise.resolve({
          lastIndex: r.model.lastIndex ?? Number.NEGATIVE_INFINITY,
          lastEnd: r.model.lastEnd,
          state: decodeFloats(
            r.model.state,
            stateSize,
            `GRU state of stream "${streamId}" in the checkpoint`,
          ),
        }),
      }
    : undefined;
  return {
    ...newSession(streamId, saved.from),
    made: saved.count,
    skip: saved.count,
    windows: r.windows,
    skipWindows: saved.count - r.windows,
    restarts: r.aligner.restarts,
    opened: true,
    cuts: [cut],
    cutCount: saved.count,
    model,
    replay: { start: r.refill ?? nextId(r.entry), refillTo: r.refill === null ? undefined : r.entry },
  };
}

/**
 * A worker's run of one partition, from its checkpoint. Each stream session open at the checkpoint is carried on
 * from its cut when it has one: its aligner state is restored and the entries that held its still-buffered events
 * are fed again as refills, its GRU state is restored, and the windows the aligner makes again up to the last one
 * committed are kept from the model — so the rebuild re-reads a window or two of input, not the whole session. A
 * session without a cut (the newer sessions of a stream id that closed and opened again, one not past its first
 * commit) is run again from its first entry, its committed predictions skipped. Either way the
 * same inputs in the same order through the same pipeline give the same windows and states, and everything after
 * the checkpoint is new. Predictions are committed with the checkpoint they bring about, in one fenced Lua call —
 * so subscribers get every window exactly once however often the partition changes hands — and the input is
 * trimmed behind the oldest entry a takeover would read. The reader waits on the pipeline's credits.
 */
export class PartitionSession {
  readonly #o: SessionOptions;
  /** Open sessions by stream id, oldest first (read order). */
  readonly #streams = new Map<string, Session[]>();
  /** The checkpoint's sessions, which classify the entries up to its `read` (see #replayAs). */
  readonly #origin = new Map<string, Session[]>();
  /** Each stream's session the aligner is in (its windows are that session's). */
  readonly #aligned = new Map<string, Session>();
  #stateOf: ((streamId: string) => AlignerStreamState | undefined) | undefined;
  #windowsBefore = 0;
  #checkpoint!: PartitionCheckpoint;
  /** The checkpoint's `read`: entries up to it are fed again only as their sessions' replay says. */
  #originRead = '0-0';
  /** Stream fields as last committed (a commit sends only those that changed). */
  #written = new Map<string, string>();
  #cursor = '0-0';
  #readCount = 0;
  /** Predictions and stream ends made since the last commit, in the order the pipeline made them. */
  #pending: OutputEntry[] = [];
  #commit = 0;
  #stopped = false;
  #committing: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #run: Subscription | undefined;
  readonly #input$ = new Subject<StreamInput>();
  readonly #credit = new FlowCredit();
  readonly counters = zeroCounters();

  constructor(options: SessionOptions) {
    this.#o = options;
  }

  get partition(): number {
    return this.#o.partition;
  }

  /** Entries this run has read past the checkpoint it started from, plus those committed before it. */
  get readCount(): number {
    return this.#readCount;
  }

  async start(): Promise<void> {
    const { redis, keys, log, partition, pipeline } = this.#o;
    const checkpoint: Checkpoint = parseCheckpoint(await redis.hgetall(keys.checkpoint));
    this.#checkpoint = checkpoint.partition;
    this.#originRead = checkpoint.partition.read;
    this.#commit = checkpoint.partition.commit;
    this.#readCount = checkpoint.partition.readCount;
    const stateSize = pipeline.runtime.store.stateSize;
    const restore: AlignerStreamState[] = [];
    const model = new Map<string, ModelStreamState>();
    for (const [id, saved] of Object.entries(checkpoint.streams)) {
      this.#written.set(streamField(id), JSON.stringify(saved));
      const sessions = saved.map((s) => sessionOf(id, s, stateSize));
      this.#streams.set(id, sessions);
      this.#origin.set(id, [...sessions]);
      const first = sessions[0];
      const r = saved[0]?.resume;
      if (first === undefined) continue;
      if (r === undefined) {
        this.counters.streamsRebuilt += sessions.length;
        continue;
      }
      this.counters.streamsResumed += 1;
      this.counters.streamsRebuilt += sessions.length - 1;
      restore.push(r.aligner);
      this.#aligned.set(id, first);
      const state = first.model && (await first.model.state);
      // A restart the aligner took after that window: the model's window order starts again too.
      if (state && r.model)
        model.set(id, r.aligner.restarts > r.model.restarts ? { ...state, lastIndex: -Infinity } : state);
    }
    const starts = [...this.#streams.values()].flat().map((s) => s.replay?.start as string);
    const start = starts.sort(compareIds)[0];
    log.info(
      {
        event: 'partition_start',
        partition,
        token: this.#o.token,
        checkpoint: this.#checkpoint.read,
        rebuild: this.#streams.size,
        resumed: this.counters.streamsResumed,
        from: start ?? null,
      },
      `partition ${partition}: taken (${this.#o.token}), ${this.#streams.size} open stream(s), ${this.counters.streamsResumed} carried on from their checkpoint, input re-read from ${start ?? this.#checkpoint.read}`,
    );
    this.#run = pipeline
      .run(this.#input$, {
        credit: this.#credit,
        onStream: (mark) => {
          // Committed with the stream's last predictions and the checkpoint that no longer holds the session.
          if (mark.state === 'end') {
            this.#pending.push({ end: mark.streamId });
            this.#streams.get(mark.streamId)?.shift();
          }
          if (this.#streams.get(mark.streamId)?.length === 0) this.#streams.delete(mark.streamId);
        },
        resume: {
          aligner: restore,
          model,
          align: {
            before: (input) => this.#beforeAlign(input),
            after: (input, stateOf) => this.#afterAlign(input, stateOf),
          },
          admit: (w) => this.#admit(w),
        },
      })
      .subscribe({
        next: (p) => this.#prediction(p),
        error: (error: unknown) =>
          this.#end(`pipeline failed: ${error instanceof Error ? error.message : String(error)}`),
      });
    this.#timer = setInterval(() => void this.#commitNow(), COMMIT_MS);
    void this.#read(start);
  }

  /**
   * Stops reading and the pipeline at once; with `flush`, then commits what it had made (a graceful hand-over). The
   * windows it still held are the next owner's to make, from the checkpoint this commit leaves.
   */
  async stop(flush: boolean): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    // Unsubscribed before the input completes: the aligner must not flush the open windows as if the streams ended.
    this.#run?.unsubscribe();
    this.#input$.complete();
    if (flush) {
      // Until the commit in flight has also cleared its mark (else the final commit would see it and return).
      while (this.#committing) await this.#committing;
      await this.#commitNow(true);
    }
  }

  /** The lease had lapsed (this worker stalled past it) and was taken back, by a renewal or a commit: say so. */
  leaseReclaimed(by: 'renewal' | 'commit'): void {
    this.counters.leaseReclaims += 1;
    this.#o.log.warn(
      { event: 'lease_reclaimed', partition: this.#o.partition, token: this.#o.token, by },
      `partition ${this.#o.partition}: its lease had lapsed (this worker stalled past --lease); nobody took it, so the ${by} took it back`,
    );
  }

  #end(why: string): void {
    if (this.#stopped) return;
    this.#o.log.warn(
      { event: 'partition_end', partition: this.#o.partition, why },
      `partition ${this.#o.partition}: ${why}`,
    );
    void this.stop(false).then(() => this.#o.ended(why));
  }

  #beforeAlign(input: unknown): void {
    const tag = tagOf(input);
    if (tag?.session === undefined) return;
    this.#aligned.set(tag.session.streamId, tag.session);
    this.#windowsBefore = tag.session.windows;
  }

  /** After the aligner took an input: what a cut of its session needs. */
  #afterAlign(input: unknown, stateOf: (streamId: string) => AlignerStreamState | undefined): void {
    this.#stateOf ??= stateOf;
    const tag = tagOf(input);
    const session = tag?.session;
    if (tag === undefined || session === undefined) return;
    const isControl = isStreamControl(input);
    const time = isControl ? undefined : (input as { time?: unknown }).time;
    if ((input as Tagged)[REFILL]) {
      if (typeof time === 'number') session.events.push({ id: tag.id, time });
      return;
    }
    const state = stateOf(session.streamId);
    if (state === undefined) {
      if (!(isControl && input.control === 'close')) return;
      // Closed in the aligner: its cuts up to here stay valid, there is no later one.
      session.closed = true;
      // Closed without the aligner ever having it open (it refused every input): no window, no prediction, and
      // no end will come from the pipeline, so it is forgotten here — else its entries would be kept forever.
      if (!session.opened) this.#forget(session);
      return;
    }
    session.opened = true;
    if (isControl && input.control === 'restart') {
      // Its buffered events were discarded: nothing before here is ever needed again.
      session.restarts = state.restarts;
      session.events.length = 0;
      session.eventsHead = 0;
    }
    session.lastEntry = tag.id;
    // A frozen session takes no more cuts (see #prediction), so it keeps nothing for them.
    if (!session.resumable) return;
    if (typeof time === 'number') session.events.push({ id: tag.id, time });
    if (session.windows !== this.#windowsBefore) session.cuts.push(this.#cutOf(session, state));
  }

  /** Drops a session that will never end through the pipeline (see #afterAlign). */
  #forget(session: Session): void {
    const sessions = this.#streams.get(session.streamId);
    const at = sessions?.indexOf(session) ?? -1;
    if (sessions === undefined || at < 0) return;
    sessions.splice(at, 1);
    if (sessions.length === 0) this.#streams.delete(session.streamId);
  }

  /** The cut just after the aligner's last input of the session, in state `state`. */
  #cutOf(session: Session, state: AlignerStreamState): Cut {
    // The events before the next window's start are released or late: their entries are never needed again (the
    // next start only grows, until a restart, which forgets them all).
    const nextStart = state.nextStart ?? Number.NEGATIVE_INFINITY;
    const { events } = session;
    while (
      session.eventsHead < events.length &&
      (events[session.eventsHead] as { time: number }).time < nextStart
    )
      session.eventsHead++;
    if (session.eventsHead > 1024 && session.eventsHead * 2 > events.length) {
      events.splice(0, session.eventsHead);
      session.eventsHead = 0;
    }
    return {
      entry: session.lastEntry as string,
      refill: events[session.eventsHead]?.id ?? null,
      windows: session.windows,
      aligner: state,
    };
  }

  #admit(w: FusedWindow): boolean {
    const session = this.#aligned.get(w.streamId);
    if (session === undefined) return true;
    session.windows += 1;
    if (session.skipWindows > 0) {
      // It ran before the checkpoint, from the state restored: committed, and not to be run again.
      session.skipWindows -= 1;
      this.counters.windowsSkipped += 1;
      return false;
    }
    session.inFlight.push({ index: w.index, restarts: session.restarts });
    return true;
  }

  #prediction(p: Prediction): void {
    const session = this.#streams.get(p.streamId)?.[0];
    if (session) {
      const w = session.inFlight.shift();
      // A window the model dropped has no prediction: counts of windows no longer say which are committed.
      if ((w === undefined || w.index !== p.windowIndex) && session.resumable) {
        session.resumable = false;
        this.counters.cutsFrozen += 1;
        // The newest cut found valid stays (its input may be trimmed already); the newer ones are not valid.
        session.cuts.length = Math.min(session.cuts.length, 1);
        session.events.length = 0;
        session.eventsHead = 0;
        this.#o.log.warn(
          { event: 'partition_cut_frozen', partition: this.#o.partition, streamId: p.streamId },
          `partition ${this.#o.partition}: stream "${p.streamId}" lost a window in the model; its checkpoint stays where it was`,
        );
      }
      session.made += 1;
      // The state right after this window: no step runs between a step's end and its predictions.
      const state = this.#o.pipeline.runtime.exportStream(p.streamId);
      session.model = state && { restarts: w?.restarts ?? 0, state };
      // Committed by an earlier owner: the rebuild made it again, identical; subscribers had it.
      if (session.made <= session.skip) return;
    }
    this.#pending.push(p);
    if (this.#pending.length >= COMMIT_BATCH) void this.#commitNow();
  }

  /**
   * How an entry up to the checkpoint's `read` is fed again: only if it belongs to a session of the checkpoint, and
   * for a session carried on from a cut, only from the entry its buffered events start at — up to the cut as
   * refills, after it as input.
   */
  #replayAs(id: string, streamId: string): { session: Session; refill: boolean } | undefined {
    const sessions = this.#origin.get(streamId);
    if (sessions === undefined) return undefined;
    let session: Session | undefined;
    for (const s of sessions) if (compareIds(id, s.from) >= 0) session = s;
    const replay = session?.replay;
    if (session === undefined || replay === undefined || compareIds(id, replay.start) < 0) return undefined;
    return { session, refill: replay.refillTo !== undefined && compareIds(id, replay.refillTo) <= 0 };
  }

  async #read(start: string | undefined): Promise<void> {
    const { reader, keys } = this.#o;
    // From the oldest entry a session of the checkpoint needs (inclusive), else after the checkpoint.
    let inclusive = start !== undefined;
    this.#cursor = start ?? this.#originRead;
    while (!this.#stopped) {
      let entries: [Buffer, Buffer[]][];
      try {
        if (inclusive) {
          entries = (await reader.xrangeBuffer(keys.input, this.#cursor, '+', 'COUNT', READ_COUNT)) as [
            Buffer,
            Buffer[],
          ][];
          inclusive = false;
          if (entries.length === 0) continue;
        } else {
          const reply = (await reader.xreadBuffer(
            'COUNT',
            READ_COUNT,
            'BLOCK',
            BLOCK_MS,
            'STREAMS',
            keys.input,
            this.#cursor,
          )) as [Buffer, [Buffer, Buffer[]][]][] | null;
          entries = reply?.[0]?.[1] ?? [];
        }
      } catch (error) {
        if (this.#stopped) return;
        // Redis away: ioredis reconnects; the session waits (its lease may lapse meanwhile, then it is fenced).
        this.#o.log.warn(
          { event: 'partition_read_failed', partition: this.#o.partition, error: String(error) },
          `partition ${this.#o.partition}: reading input failed, trying again`,
        );
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      for (const [rawId, fields] of entries) {
        if (this.#stopped) return;
        const id = rawId.toString();
        this.#cursor = id;
        this.counters.entriesRead += 1;
        const old = compareIds(id, this.#originRead) <= 0;
        if (!old) this.#readCount += 1;
        const input = decodeInput(fields) as StreamInput & Tagged;
        if (old) {
          const as = this.#replayAs(id, input.streamId);
          if (as === undefined) continue;
          this.#track(id, input, true);
          input[ENTRY] = { id, session: as.session };
          if (as.refill) input[REFILL] = true;
        } else {
          this.#track(id, input, false);
          input[ENTRY] = { id, session: this.#streams.get(input.streamId)?.at(-1) };
        }
        const room = this.#credit.ready();
        if (room) await room;
        if (this.#stopped) return;
        this.#input$.next(input);
      }
    }
  }

  /**
   * Follows which streams are open at the pipeline's input exactly as its StreamLifecycle does: a session begins at
   * any input but a close of a stream not open, and a close ends it there. Entries up to the checkpoint belong to
   * the checkpoint's sessions already; later ones may begin new sessions.
   */
  #track(id: string, input: StreamInput, old: boolean): void {
    const streamId = input.streamId;
    if (isStreamControl(input) && input.control === 'close') {
      this.#inputOpen.delete(streamId);
      return;
    }
    if (this.#inputOpen.has(streamId)) return;
    this.#inputOpen.add(streamId);
    if (old) return;
    const sessions = this.#streams.get(streamId) ?? [];
    sessions.push(newSession(streamId, id));
    this.#streams.set(streamId, sessions);
  }

  /** Streams open at the pipeline's input. */
  readonly #inputOpen = new Set<string>();

  /**
   * The newest cut of the session whose windows are all committed once `count` of its predictions are, or
   * undefined (it has none, or can no longer tell). Only the oldest session of a stream id is ever carried on.
   */
  #cutFor(session: Session, count: number): Cut | undefined {
    // Run again from its first entry and not caught up yet: its input is all kept, nothing to cut.
    if (session.made < session.skip || (count > 0 && session.model === undefined)) return undefined;
    // The input behind a cut may be trimmed already: once a session has one it must keep one, so a cut found
    // before the counts stopped matching stays (it is never taken again, and the partition's log says so).
    if (!session.resumable) {
      const kept = session.cuts[0];
      return kept !== undefined && kept.windows <= count ? kept : undefined;
    }
    // No new window committed: the cut stays (so does its GRU state), and the stream's field is not rewritten.
    if (count === session.cutCount && session.cuts[0] !== undefined) return session.cuts[0];
    const stateOf = this.#stateOf;
    if (
      stateOf &&
      session.lastEntry !== undefined &&
      !session.closed &&
      session.windows <= count &&
      this.#aligned.get(session.streamId) === session &&
      session.cuts.at(-1)?.entry !== session.lastEntry
    ) {
      const state = stateOf(session.streamId);
      if (state) session.cuts.push(this.#cutOf(session, state));
    }
    let valid = -1;
    for (let i = 0; i < session.cuts.length; i++) if ((session.cuts[i] as Cut).windows <= count) valid = i;
    if (valid < 0) return undefined;
    session.cuts.splice(0, valid);
    session.cutCount = count;
    return session.cuts[0];
  }

  /**
   * A commit given up for the final one of a hand-over: its predictions go back in front of those made since, for
   * the final commit, whose checkpoint counts them (else the next owner would skip windows nobody wrote).
   */
  #giveBack(predictions: OutputEntry[]): void {
    this.#pending = [...predictions, ...this.#pending];
  }

  async #commitNow(final = false): Promise<void> {
    if (this.#committing) return;
    if (this.#stopped && !final) return;
    const predictions = this.#pending;
    const cursor = this.#cursor;
    if (predictions.length === 0 && compareIds(cursor, this.#checkpoint.read) <= 0) return;
    this.#pending = [];
    // Everything the checkpoint says is taken now, in one synchronous pass: it matches the predictions above.
    const records: [string, { saved: SessionCheckpoint; model: Session['model'] }[]][] = [];
    for (const [id, sessions] of this.#streams)
      records.push([
        id,
        sessions.map((s, i) => {
          const count = Math.max(s.made, s.skip);
          const cut = i === 0 ? this.#cutFor(s, count) : undefined;
          const { aligner, entry, refill, windows } = cut ?? ({} as Partial<Cut>);
          const saved: SessionCheckpoint = {
            from: s.from,
            count,
            ...(cut && {
              resume: { entry, refill, windows, aligner, model: null } as Resume,
            }),
          };
          return { saved, model: cut && count > 0 ? s.model : undefined };
        }),
      ]);
    const read = compareIds(cursor, this.#checkpoint.read) > 0 ? cursor : this.#checkpoint.read;
    const checkpoint: PartitionCheckpoint = {
      token: this.#o.token,
      commit: this.#commit + 1,
      read,
      readCount: this.#readCount,
    };
    const { redis, keys } = this.#o;
    this.#committing = (async () => {
      const fields = new Map<string, string>();
      const starts: string[] = [];
      for (const [id, sessions] of records) {
        const saved: SessionCheckpoint[] = [];
        for (const { saved: s, model } of sessions) {
          if (s.resume && model) {
            const state = await model.state;
            s.resume.model = {
              lastIndex: Number.isFinite(state.lastIndex) ? state.lastIndex : null,
              lastEnd: state.lastEnd,
              restarts: model.restarts,
              state: encodeFloats(state.state),
            };
          }
          saved.push(s);
          starts.push(s.resume ? (s.resume.refill ?? nextId(s.resume.entry)) : s.from);
        }
        fields.set(streamField(id), JSON.stringify(saved));
      }
      const set: string[] = [];
      for (const [field, value] of fields) if (this.#written.get(field) !== value) set.push(field, value);
      const gone = [...this.#written.keys()].filter((field) => !fields.has(field));
      // Input is kept from the oldest entry a takeover would read again; with no open stream, up to `read`.
      const trimTo = starts.sort(compareIds)[0] ?? nextId(read);
      for (;;) {
        try {
          const ok = await redis.braidCommit(
            keys.lease,
            keys.checkpoint,
            keys.output,
            keys.input,
            keys.read,
            keys.fence,
            this.#o.token,
            checkpoint.commit,
            JSON.stringify(checkpoint),
            checkpoint.readCount,
            trimTo,
            this.#o.outputCap,
            set.length / 2,
            gone.length,
            this.#o.leaseMs,
            ...set,
            ...gone,
            ...predictions.map(encodePrediction),
          );
          if (ok === 0) {
            this.counters.fencedCommits += 1;
            this.#end('lease lost: another worker owns the partition now (commit fenced)');
            return;
          }
          if (ok === 2) this.leaseReclaimed('commit');
          this.#commit = checkpoint.commit;
          this.#checkpoint = checkpoint;
          this.#written = fields;
          this.counters.commits += 1;
          this.counters.predictions += predictions.filter((p) => !('end' in p)).length;
          return;
        } catch {
          if (this.#stopped && !final) return this.#giveBack(predictions);
          this.counters.commitRetries += 1;
          // Redis away: the same commit again once it is back (its number makes a retry harmless).
          await new Promise((r) => setTimeout(r, 250));
          if (this.#stopped && !final) return this.#giveBack(predictions);
        }
      }
    })();
    await this.#committing;
    this.#committing = undefined;
  }
}
