import { WebSocket } from 'ws';
import type { StreamInput } from '../core/events.js';
import type { InputRefusal } from '../core/refusal.js';
import { type IngestCounters, type IngestLimits, IngestSession } from './ingest-session.js';
import type { ErrorMessage, ProtocolError } from './protocol.js';
import { ReplyLimiter } from './reply-limiter.js';
import type { StreamDirectory, StreamOwner } from './stream-directory.js';

export interface ProducerTimeouts {
  /** A connection that has not sent a valid hello by then is closed (ms). */
  readonly helloMs: number;
  /** A producer that sends nothing for this long is closed and its stream with it (ms). */
  readonly idleMs: number;
}

export interface ProducerHooks {
  /** Every input accepted, on its way to the pipeline. */
  readonly push: (input: StreamInput) => void;
  readonly directory: StreamDirectory;
  readonly counters: IngestCounters;
  /** A message refused at the protocol level (also counted in `counters.rejected`). */
  readonly rejected: (reason: string) => void;
  /** Frames accepted by this message (0 or 1). */
  readonly accepted: (frames: number) => void;
  /** An error reply held back by the rate limit. */
  readonly suppressed: () => void;
  /** The connection was closed for a timeout (`hello_timeout`, `idle_timeout`). */
  readonly timedOut: (reason: 'hello_timeout' | 'idle_timeout') => void;
  readonly log: (line: string) => void;
}

/** Close code for a producer closed for breaking the protocol's time limits (RFC 6455: policy violation). */
export const CLOSE_POLICY = 1008;

/**
 * One producer socket: feeds its messages to an {@link IngestSession}, answers every refused message — its own and
 * those the pipeline refused later for its stream — with an error naming the message and the reason (at a capped
 * rate), and closes a connection that never says hello or goes silent.
 */
export class ProducerConnection implements StreamOwner {
  readonly #ws: WebSocket;
  readonly #session: IngestSession;
  readonly #hooks: ProducerHooks;
  readonly #replies: ReplyLimiter;
  readonly #timeouts: ProducerTimeouts;
  #helloTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(ws: WebSocket, limits: IngestLimits, timeouts: ProducerTimeouts, hooks: ProducerHooks) {
    this.#ws = ws;
    this.#hooks = hooks;
    this.#timeouts = timeouts;
    this.#replies = new ReplyLimiter();
    this.#session = new IngestSession(
      hooks.push,
      {
        claim: (id) => hooks.directory.claim(id, this),
        release: (id) => hooks.directory.release(id, this),
      },
      hooks.counters,
      limits,
    );
    this.#helloTimer = setTimeout(() => this.#timeout('hello_timeout'), timeouts.helloMs);
    this.#helloTimer.unref();
    ws.on('message', (data, isBinary) => this.#message(data, isBinary));
    ws.on('error', () => {});
    ws.on('close', () => this.#closed());
  }

  get streamId(): string | undefined {
    return this.#session.streamId;
  }

  /** The pipeline dropped input of this producer's stream. */
  refused(refusal: InputRefusal): void {
    const { streamId: _streamId, reason, message, ...subject } = refusal;
    this.#reply({ type: 'error', code: reason, message, ...subject });
  }

  #message(data: WebSocket.RawData, isBinary: boolean): void {
    this.#armIdle();
    const bytes = Array.isArray(data)
      ? Buffer.concat(data)
      : Buffer.isBuffer(data)
        ? data
        : Buffer.from(data);
    const before = this.#hooks.counters.framesIn;
    const error = this.#session.handle(isBinary ? bytes : bytes.toString('utf8'), isBinary);
    this.#hooks.accepted(this.#hooks.counters.framesIn - before);
    if (this.#helloTimer && this.#session.streamId !== undefined) {
      clearTimeout(this.#helloTimer);
      this.#helloTimer = undefined;
    }
    if (error !== undefined) this.#refused(error);
  }

  #refused(error: ProtocolError): void {
    this.#hooks.rejected(error.reason);
    this.#reply({ type: 'error', code: error.reason, message: error.message, ...error.subject });
  }

  #reply(message: ErrorMessage): void {
    const turn = this.#replies.take(message.code);
    if (!turn.send) return this.#hooks.suppressed();
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(
      JSON.stringify(turn.suppressed > 0 ? { ...message, suppressed: turn.suppressed } : message),
    );
  }

  #armIdle(): void {
    if (this.#idleTimer) this.#idleTimer.refresh();
    else {
      this.#idleTimer = setTimeout(() => this.#timeout('idle_timeout'), this.#timeouts.idleMs);
      this.#idleTimer.unref();
    }
  }

  #timeout(reason: 'hello_timeout' | 'idle_timeout'): void {
    this.#hooks.timedOut(reason);
    const text =
      reason === 'hello_timeout'
        ? `no valid hello within ${this.#timeouts.helloMs} ms of connecting`
        : `nothing received for ${this.#timeouts.idleMs} ms`;
    this.#hooks.log(`braid: closing producer${this.streamId ? ` "${this.streamId}"` : ''}: ${text}`);
    if (this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify({ type: 'error', code: reason, message: text } satisfies ErrorMessage));
      this.#ws.close(CLOSE_POLICY, reason);
    }
    // The close handshake needs the peer; a silent one is cut off after a grace period.
    setTimeout(() => this.#ws.terminate(), 2000).unref();
  }

  #closed(): void {
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#idleTimer);
    this.#session.close();
  }
}
