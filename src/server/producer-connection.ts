import { WebSocket } from 'ws';
import type { StreamInput } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { InputRefusal } from '../core/refusal.js';
import { type IngestCounters, type IngestLimits, IngestSession } from './ingest-session.js';
import type { ErrorMessage, Hello, ProtocolError, ReadyMessage, ServerMessage } from './protocol.js';
import { ReplyLimiter } from './reply-limiter.js';
import type { Claim, StreamDirectory, StreamOwner } from './stream-directory.js';

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
  /** The `ready` answering a v2 hello. */
  readonly ready: (hello: Hello, claim: Claim) => ReadyMessage;
  readonly counters: IngestCounters;
  /** A message refused at the protocol level (also counted in `counters.rejected`). */
  readonly rejected: (reason: string) => void;
  /** Frames accepted by this message (0 or 1). */
  readonly accepted: (frames: number) => void;
  /** An error reply held back by the rate limit. */
  readonly suppressed: () => void;
  /** The connection was closed for a timeout (`hello_timeout`, `idle_timeout`). */
  readonly timedOut: (reason: 'hello_timeout' | 'idle_timeout') => void;
  readonly log: Logger;
  /** The peer's address, for the log. */
  readonly address?: string;
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
  /** The server ended the connection on purpose (a timeout): its stream closes rather than waiting for a resume. */
  #closedByServer = false;
  /** Another connection took the stream over: what this one still delivers (read before the cut) is not its to give. */
  #evicted = false;

  constructor(ws: WebSocket, limits: IngestLimits, timeouts: ProducerTimeouts, hooks: ProducerHooks) {
    this.#ws = ws;
    this.#hooks = hooks;
    this.#timeouts = timeouts;
    this.#replies = new ReplyLimiter();
    this.#session = new IngestSession(
      {
        emit: hooks.push,
        claim: (hello) => hooks.directory.claim(hello, this),
        ready: (hello, claim) => this.#send(hooks.ready(hello, claim)),
        claimed: (hello, claim) =>
          hooks.log.info(
            {
              event: claim.resumed ? 'stream_resumed' : 'stream_opened',
              streamId: hello.streamId,
              version: hello.version,
              address: hooks.address,
            },
            `producer ${hooks.address ?? ''} ${claim.resumed ? 'resumed' : 'opened'} stream "${hello.streamId}" (protocol v${hello.version})`,
          ),
      },
      hooks.counters,
      limits,
    );
    this.#helloTimer = setTimeout(() => this.#timeout('hello_timeout'), timeouts.helloMs);
    this.#helloTimer.unref();
    ws.on('message', (data, isBinary) => this.#message(data, isBinary));
    ws.on('error', () => {});
    // Code 1006: the connection ended without a close frame (cut off, or terminated by the heartbeat).
    ws.on('close', (code) => this.#closed(this.#closedByServer || code !== 1006));
  }

  get streamId(): string | undefined {
    return this.#session.streamId;
  }

  /** Another connection resumed this stream with its token (this one is half-open or stale): it goes. */
  evicted(): void {
    this.#hooks.log.info(
      { event: 'producer_taken_over', streamId: this.streamId },
      `producer "${this.streamId}" taken over by a resuming connection`,
    );
    this.#evicted = true;
    this.#ws.terminate();
  }

  /** The pipeline dropped input of this producer's stream. */
  refused(refusal: InputRefusal): void {
    const { streamId: _streamId, reason, message, ...subject } = refusal;
    this.#reply({ type: 'error', code: reason, message, ...subject });
  }

  #message(data: WebSocket.RawData, isBinary: boolean): void {
    // ws still emits the messages it had read when terminate() was called; counted, and nobody left to answer.
    if (this.#evicted) {
      this.#hooks.counters.rejected['taken_over'] = (this.#hooks.counters.rejected['taken_over'] ?? 0) + 1;
      this.#hooks.rejected('taken_over');
      return;
    }
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
    this.#send(turn.suppressed > 0 ? { ...message, suppressed: turn.suppressed } : message);
  }

  #send(message: ServerMessage): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  #armIdle(): void {
    if (this.#idleTimer) this.#idleTimer.refresh();
    else {
      this.#idleTimer = setTimeout(() => this.#timeout('idle_timeout'), this.#timeouts.idleMs);
      this.#idleTimer.unref();
    }
  }

  #timeout(reason: 'hello_timeout' | 'idle_timeout'): void {
    this.#closedByServer = true;
    this.#hooks.timedOut(reason);
    const text =
      reason === 'hello_timeout'
        ? `no valid hello within ${this.#timeouts.helloMs} ms of connecting`
        : `nothing received for ${this.#timeouts.idleMs} ms`;
    this.#hooks.log.info(
      { event: 'producer_closed', reason, streamId: this.streamId, address: this.#hooks.address },
      `closing producer${this.streamId ? ` "${this.streamId}"` : ''}: ${text}`,
    );
    if (this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify({ type: 'error', code: reason, message: text } satisfies ErrorMessage));
      this.#ws.close(CLOSE_POLICY, reason);
    }
    // The close handshake needs the peer; a silent one is cut off after a grace period.
    setTimeout(() => this.#ws.terminate(), 2000).unref();
  }

  #closed(clean: boolean): void {
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#idleTimer);
    this.#session.close(clean);
  }
}
