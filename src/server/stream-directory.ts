import { randomBytes } from 'node:crypto';
import { isStreamControl, type Modality, type StreamInput } from '../core/events.js';
import type { InputRefusal } from '../core/refusal.js';
import type { Hello } from './protocol.js';
import type { SubscriberHub } from './subscriber-hub.js';

/** Whoever feeds a stream and should hear what the pipeline refused of it (a producer connection). */
export interface StreamOwner {
  refused(refusal: InputRefusal): void;
  /** Another connection took the stream over with its resume token: this one must go. */
  evicted(): void;
}

/** The last event the server took of one modality of a stream. */
export interface Position {
  readonly seq: number;
  readonly time: number;
}

/** A producer's claim on a stream: what the `ready` says, and where to report what it sends. */
export interface Claim {
  readonly resumed: boolean;
  readonly resumeToken: string;
  /** On a resume: the last seq and time taken of each modality. */
  readonly last: Readonly<Partial<Record<Modality, Position>>>;
  /** The session's accepted events move the stream's positions on. */
  accepted(modality: Modality, seq: number, time: number): void;
  /**
   * The session ended. `clean`: by a close message, a close frame or the server; its stream closes. Otherwise the
   * connection was cut (no close frame, heartbeat): the stream is suspended for the resume grace.
   */
  release(clean: boolean): void;
}

export type ClaimRefusal = {
  readonly refused: 'stream_in_use' | 'bad_resume_token';
  readonly message: string;
};

interface StreamRecord {
  readonly streamId: string;
  readonly hello: Hello;
  readonly resumeToken: string;
  readonly last: Partial<Record<Modality, Position>>;
  owner: StreamOwner | undefined;
  /** Set while suspended: closes the stream when the grace runs out. */
  grace: NodeJS.Timeout | undefined;
}

export interface DirectoryOptions {
  /** How long a cut-off producer's stream waits for a resume (ms); 0 closes it at once. */
  readonly resumeGraceMs: number;
  /** Controls for the pipeline (open, close, suspend, resume). */
  readonly push: (input: StreamInput) => void;
}

/**
 * Same declared formats: a resume continues a stream only if its producer sends what it sent before — the same set of
 * modalities (in any order) and, of those declared, the same audio and video formats (a format given for a modality
 * not declared is not used, so it does not count).
 */
function sameFormats(a: Hello, b: Hello): boolean {
  const modalities = new Set(a.modalities);
  if (modalities.size !== new Set(b.modalities).size || !b.modalities.every((m) => modalities.has(m)))
    return false;
  if (modalities.has('audio')) {
    const [x, y] = [a.audio, b.audio];
    if (x?.sampleRate !== y?.sampleRate || x?.format !== y?.format || x?.channels !== y?.channels)
      return false;
  }
  if (modalities.has('video')) {
    const [x, y] = [a.video, b.video];
    if (x?.format !== y?.format) return false;
    if (x && y && 'width' in x && 'width' in y && (x.width !== y.width || x.height !== y.height))
      return false;
  }
  return true;
}

/**
 * The streams a server knows: which are open (announced to subscribers as opened and closed) and which producer
 * owns each, so that two producers cannot feed one stream and refusals reach the right socket. A producer cut off
 * without a close leaves its stream suspended — model state, window grid and seq positions kept — for the resume
 * grace; a hello with the same stream id (and, if given, its resume token) in that time continues it.
 */
export class StreamDirectory {
  readonly #open = new Set<string>();
  /** Streams closed at the input whose last prediction the pipeline has not reported yet (closes pending each). */
  readonly #closing = new Map<string, number>();
  /**
   * Per stream id, the owners of its closed incarnations whose end the pipeline has not reported, oldest first
   * (undefined: it had none when it closed). What the pipeline refuses of a stream until then was sent by them, not by
   * a producer that has claimed the id since.
   */
  readonly #closedOwners = new Map<string, (StreamOwner | undefined)[]>();
  readonly #records = new Map<string, StreamRecord>();
  readonly #options: DirectoryOptions;
  suspensions = 0;
  resumes = 0;
  graceExpiries = 0;

  constructor(
    private readonly hub: SubscriberHub,
    options: DirectoryOptions,
  ) {
    this.#options = options;
  }

  get size(): number {
    return this.#open.size;
  }

  get suspended(): number {
    let n = 0;
    for (const r of this.#records.values()) if (r.owner === undefined) n++;
    return n;
  }

  list(): string[] {
    return [...this.#open];
  }

  /**
   * Notes an input on its way to the pipeline: a stream's first input or open announces it. A close takes it off the
   * list at once, but subscribers hear `closed` only when the pipeline has put out its last prediction
   * ({@link ended}), so a subscriber that stops at `closed` has every window of the stream.
   */
  note(input: StreamInput): void {
    const { streamId } = input;
    if (isStreamControl(input) && input.control === 'close') {
      if (this.#open.delete(streamId)) this.#closing.set(streamId, (this.#closing.get(streamId) ?? 0) + 1);
      return;
    }
    if (this.#open.has(streamId)) return;
    if (isStreamControl(input) && input.control !== 'open') return;
    // Opened again before its last windows are out: announce that close now, so `opened` never precedes it.
    if (this.#closing.has(streamId)) this.#announceClosed(streamId, true);
    this.#open.add(streamId);
    this.hub.broadcast({ type: 'stream', event: 'opened', streamId }, streamId);
  }

  /** The pipeline put out the last prediction of a closed stream (or dropped its last window). */
  ended(streamId: string): void {
    this.#announceClosed(streamId, false);
    const owners = this.#closedOwners.get(streamId);
    owners?.shift();
    if (owners?.length === 0) this.#closedOwners.delete(streamId);
  }

  /** The pipeline failed and starts afresh: the closes it had not finished will never be reported. */
  pipelineRestarted(): void {
    for (const streamId of [...this.#closing.keys()]) this.#announceClosed(streamId, true);
    this.#closedOwners.clear();
  }

  #announceClosed(streamId: string, all: boolean): void {
    const pending = this.#closing.get(streamId);
    if (pending === undefined) return;
    if (all || pending <= 1) this.#closing.delete(streamId);
    else this.#closing.set(streamId, pending - 1);
    this.hub.broadcast({ type: 'stream', event: 'closed', streamId }, streamId);
  }

  /** Claims a stream for a producer's hello: a new stream, a resume of a suspended one, or a take-over by token. */
  claim(hello: Hello, owner: StreamOwner): Claim | ClaimRefusal {
    const { streamId } = hello;
    const record = this.#records.get(streamId);
    if (record !== undefined) {
      const tokenGiven = hello.resumeToken !== undefined;
      if (tokenGiven && hello.resumeToken !== record.resumeToken)
        return { refused: 'bad_resume_token', message: `resumeToken does not match stream "${streamId}"` };
      if (record.owner !== undefined && !tokenGiven)
        return { refused: 'stream_in_use', message: `stream "${streamId}" already has a producer` };
      if (sameFormats(record.hello, hello)) return this.#resume(record, owner);
      // Other formats: not the same stream any more. The old one ends — its producer, if still connected, is cut
      // off as on any take-over, so nothing more of it reaches the new stream — and a new one starts under the id.
      record.owner?.evicted();
      this.#end(record);
    }
    const fresh: StreamRecord = {
      streamId,
      hello,
      resumeToken: randomBytes(18).toString('base64url'),
      last: {},
      owner,
      grace: undefined,
    };
    this.#records.set(streamId, fresh);
    this.#options.push({ control: 'open', streamId, modalities: hello.modalities });
    return this.#claimOf(fresh, owner, false);
  }

  ownerOf(streamId: string): StreamOwner | undefined {
    const closed = this.#closedOwners.get(streamId);
    if (closed !== undefined) return closed[0];
    return this.#records.get(streamId)?.owner;
  }

  /** Closes every suspended stream now (server shutdown). */
  closeSuspended(): void {
    for (const record of [...this.#records.values()]) if (record.owner === undefined) this.#end(record);
  }

  #resume(record: StreamRecord, owner: StreamOwner): Claim {
    const previous = record.owner;
    if (previous !== undefined) previous.evicted();
    const wasSuspended = record.grace !== undefined;
    clearTimeout(record.grace);
    record.grace = undefined;
    record.owner = owner;
    this.resumes++;
    if (wasSuspended) {
      this.#options.push({ control: 'resume', streamId: record.streamId });
      this.hub.broadcast({ type: 'stream', event: 'resumed', streamId: record.streamId }, record.streamId);
    }
    return this.#claimOf(record, owner, true);
  }

  #claimOf(record: StreamRecord, owner: StreamOwner, resumed: boolean): Claim {
    let released = false;
    return {
      resumed,
      resumeToken: record.resumeToken,
      last: { ...record.last },
      accepted: (modality, seq, time) => {
        if (record.owner === owner) record.last[modality] = { seq, time };
      },
      release: (clean) => {
        if (released) return;
        released = true;
        // A connection that was taken over has nothing left to release.
        if (record.owner !== owner || this.#records.get(record.streamId) !== record) return;
        if (clean || this.#options.resumeGraceMs <= 0) return this.#end(record);
        this.#suspend(record);
      },
    };
  }

  #suspend(record: StreamRecord): void {
    record.owner = undefined;
    this.suspensions++;
    this.#options.push({ control: 'suspend', streamId: record.streamId });
    this.hub.broadcast({ type: 'stream', event: 'suspended', streamId: record.streamId }, record.streamId);
    record.grace = setTimeout(() => {
      this.graceExpiries++;
      this.#end(record);
    }, this.#options.resumeGraceMs);
    record.grace.unref();
  }

  #end(record: StreamRecord): void {
    clearTimeout(record.grace);
    this.#records.delete(record.streamId);
    // Only a stream the pipeline has seen reports its end (note() counts the same closes).
    if (this.#open.has(record.streamId)) {
      const owners = this.#closedOwners.get(record.streamId) ?? [];
      owners.push(record.owner);
      this.#closedOwners.set(record.streamId, owners);
    }
    this.#options.push({ control: 'close', streamId: record.streamId });
  }
}
