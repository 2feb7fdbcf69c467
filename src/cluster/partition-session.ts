import { Subject, type Subscription } from 'rxjs';
import { isStreamControl, type StreamInput } from '../core/events.js';
import { FlowCredit } from '../core/flow-credit.js';
import type { Logger } from '../core/logger.js';
import type { Prediction } from '../core/window.js';
import type { PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';
import { type Checkpoint, parseCheckpoint } from './checkpoint.js';
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
  /** A fresh pipeline for this partition's streams (the one `serve` runs, with credits so nothing drops). */
  readonly pipeline: PredictionPipelineRunner;
  readonly log: Logger;
  /** Output entries kept per partition (approximately; gateways read them as they come). */
  readonly outputCap: number;
  /** Told once when the session ends by itself: lease lost, or a failure. */
  readonly ended: (why: string) => void;
}

/** Entries read per round, and the wait of a blocking read for new ones (ms). */
const READ_COUNT = 256;
const BLOCK_MS = 500;
/** A commit goes out this often (ms) while predictions wait, or at once once this many wait. */
const COMMIT_MS = 50;
const COMMIT_BATCH = 512;

/** One session of a stream inside a partition: where it began, and its predictions since. */
interface Session {
  readonly from: string;
  /** Predictions the pipeline made for it in this run (the skipped ones included). */
  made: number;
  /** Already committed before this run (a rebuild skips that many). */
  readonly skip: number;
}

/**
 * A worker's run of one partition, from its checkpoint: each stream open at the checkpoint is rebuilt from the entry
 * its session began at (the same inputs in the same order through the same pipeline give the same windows and the
 * same GRU states), its predictions already committed are skipped, and everything after the checkpoint is new.
 * Predictions are committed with the checkpoint they bring about, in one fenced Lua call — so subscribers get every
 * window exactly once however often the partition changes hands. The reader waits on the pipeline's credits.
 */
export class PartitionSession {
  readonly #o: SessionOptions;
  readonly #streams = new Map<string, Session[]>();
  #checkpoint!: Checkpoint;
  /** The checkpoint this run started from: entries up to its `read` are fed again only for its open sessions. */
  #origin!: Checkpoint;
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

  constructor(options: SessionOptions) {
    this.#o = options;
  }

  get partition(): number {
    return this.#o.partition;
  }

  async start(): Promise<void> {
    const { redis, keys, log, partition } = this.#o;
    this.#checkpoint = parseCheckpoint(await redis.get(keys.checkpoint));
    this.#origin = this.#checkpoint;
    this.#commit = this.#checkpoint.commit;
    this.#readCount = this.#checkpoint.readCount;
    for (const [id, sessions] of Object.entries(this.#checkpoint.streams))
      this.#streams.set(
        id,
        sessions.map((s) => ({ from: s.from, made: 0, skip: s.count })),
      );
    const froms = [...this.#streams.values()].flat().map((s) => s.from);
    const start = froms.sort(compareIds)[0];
    log.info(
      {
        event: 'partition_start',
        partition,
        token: this.#o.token,
        checkpoint: this.#checkpoint.read,
        rebuild: this.#streams.size,
      },
      `partition ${partition}: taken (${this.#o.token}), ${this.#streams.size} open stream(s) rebuilt from ${start ?? this.#checkpoint.read}`,
    );
    this.#run = this.#o.pipeline
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
      })
      .subscribe({
        next: (p) => this.#prediction(p),
        error: (error: unknown) =>
          this.#end(`pipeline failed: ${error instanceof Error ? error.message : String(error)}`),
      });
    this.#timer = setInterval(() => void this.#commitNow(), COMMIT_MS);
    void this.#read(start);
  }

  /** Stops reading; with `flush`, commits what is pending first (a graceful hand-over). */
  async stop(flush: boolean): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    if (flush) {
      await this.#committing;
      await this.#commitNow(true);
    }
    this.#run?.unsubscribe();
    this.#input$.complete();
  }

  #end(why: string): void {
    if (this.#stopped) return;
    this.#o.log.warn(
      { event: 'partition_end', partition: this.#o.partition, why },
      `partition ${this.#o.partition}: ${why}`,
    );
    void this.stop(false).then(() => this.#o.ended(why));
  }

  #prediction(p: Prediction): void {
    const session = this.#streams.get(p.streamId)?.[0];
    if (session) {
      session.made += 1;
      // Committed by an earlier owner: the rebuild made it again, identical; subscribers had it.
      if (session.made <= session.skip) return;
    }
    this.#pending.push(p);
    if (this.#pending.length >= COMMIT_BATCH) void this.#commitNow();
  }

  /** Whether an entry at or before the checkpoint is fed again: only the entries of sessions still open then. */
  #replayed(id: string, streamId: string): boolean {
    const sessions = this.#origin.streams[streamId];
    return sessions?.some((s) => compareIds(id, s.from) >= 0) ?? false;
  }

  async #read(start: string | undefined): Promise<void> {
    const { reader, keys } = this.#o;
    // From the oldest open session's first entry (inclusive), else after the checkpoint.
    let inclusive = start !== undefined;
    this.#cursor = start ?? this.#origin.read;
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
        const old = compareIds(id, this.#origin.read) <= 0;
        if (!old) this.#readCount += 1;
        const input = decodeInput(fields);
        if (old && !this.#replayed(id, input.streamId)) continue;
        this.#track(id, input, old);
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
    sessions.push({ from: id, made: 0, skip: 0 });
    this.#streams.set(streamId, sessions);
  }

  /** Streams open at the pipeline's input. */
  readonly #inputOpen = new Set<string>();

  async #commitNow(final = false): Promise<void> {
    if (this.#committing) return;
    if (this.#stopped && !final) return;
    const predictions = this.#pending;
    const cursor = this.#cursor;
    if (predictions.length === 0 && compareIds(cursor, this.#checkpoint.read) <= 0) return;
    this.#pending = [];
    const streams: Checkpoint['streams'] = {};
    for (const [id, sessions] of this.#streams)
      streams[id] = sessions.map((s) => ({ from: s.from, count: Math.max(s.made, s.skip) }));
    const froms = Object.values(streams)
      .flat()
      .map((s) => s.from)
      .sort(compareIds);
    const read = compareIds(cursor, this.#checkpoint.read) > 0 ? cursor : this.#checkpoint.read;
    const trimTo = froms[0] ?? nextId(read);
    const checkpoint: Checkpoint = {
      token: this.#o.token,
      commit: this.#commit + 1,
      read,
      readCount: this.#readCount,
      streams,
    };
    const { redis, keys } = this.#o;
    this.#committing = (async () => {
      for (;;) {
        try {
          const ok = await redis.braidCommit(
            keys.lease,
            keys.checkpoint,
            keys.output,
            keys.input,
            keys.read,
            this.#o.token,
            checkpoint.commit,
            JSON.stringify(checkpoint),
            this.#readCount,
            trimTo,
            this.#o.outputCap,
            ...predictions.map(encodePrediction),
          );
          if (ok !== 1) {
            this.#end('lease lost: another worker owns the partition now (commit fenced)');
            return;
          }
          this.#commit = checkpoint.commit;
          this.#checkpoint = checkpoint;
          return;
        } catch {
          if (this.#stopped && !final) return;
          // Redis away: the same commit again once it is back (its number makes a retry harmless).
          await new Promise((r) => setTimeout(r, 250));
          if (this.#stopped && !final) return;
        }
      }
    })();
    await this.#committing;
    this.#committing = undefined;
  }
}
