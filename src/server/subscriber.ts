import type { WebSocket } from 'ws';
import type { ServerMessage } from './protocol.js';

/** The byte stream under a subscriber's WebSocket (the upgraded socket), which can hold writes back until uncorked. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export interface SubscriberLimits {
  /** Messages queued for this subscriber while its socket is full; beyond it the oldest predictions are dropped. */
  readonly maxQueue: number;
  /** Socket bytes in flight above which messages wait in the queue instead. */
  readonly maxBufferedBytes: number;
  /** A subscriber that cannot take anything for this long is closed with 1013 (try again later). */
  readonly stallMs: number;
}

/**
 * One subscriber: which streams it wants and a bounded queue in front of its socket. Sending never waits, so ingest
 * and other subscribers never slow down for a slow one; what is dropped is counted and reported in its next message.
 */
export class Subscriber {
  #wanted: Set<string> | '*' = new Set();
  #kinds: { predictions: boolean; events: boolean } = { predictions: true, events: false };
  #queue: { message: ServerMessage; text: string }[] = [];
  #dropped = 0;
  #stalledSince: number | undefined;
  #closed = false;
  #corked = false;
  droppedTotal = 0;

  /**
   * `stream`: the socket under `socket`; given, everything sent in one turn of the event loop (a shard's batch of
   * predictions for many streams) leaves in one write instead of a system call per message.
   */
  constructor(
    private readonly socket: WebSocket,
    private readonly limits: SubscriberLimits,
    private readonly onDrop: (n: number) => void = () => {},
    private readonly now: () => number = () => performance.now(),
    private readonly stream?: Corkable,
  ) {}

  /** Which streams, and whether it gets their predictions (default) and their events (opt-in). */
  subscribe(streams: '*' | readonly string[], kinds: { predictions?: boolean; events?: boolean } = {}): void {
    this.#wanted = streams === '*' ? '*' : new Set(streams);
    this.#kinds = { predictions: kinds.predictions ?? true, events: kinds.events ?? false };
  }

  get kinds(): { readonly predictions: boolean; readonly events: boolean } {
    return this.#kinds;
  }

  /** Whether it wants the stream's messages; of a prediction or an event, whether it wants that kind too. */
  wants(streamId: string, kind?: 'prediction' | 'event'): boolean {
    if (kind === 'prediction' && !this.#kinds.predictions) return false;
    if (kind === 'event' && !this.#kinds.events) return false;
    return this.#wanted === '*' || this.#wanted.has(streamId);
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Queues a message; `text` is its JSON when the caller already made it (one prediction goes to many). */
  send(message: ServerMessage, text?: string): void {
    if (this.#closed) return;
    this.#queue.push({ message, text: text ?? JSON.stringify(message) });
    if (this.#queue.length > this.limits.maxQueue) {
      // Drop the oldest prediction (other messages are rare and matter: stream opened/closed, errors).
      const i = this.#queue.findIndex((q) => q.message.type === 'prediction');
      this.#queue.splice(Math.max(i, 0), 1);
      this.#dropped++;
      this.droppedTotal++;
      this.onDrop(1);
    }
    this.flush();
  }

  /** Writes queued messages while the socket has room; closes a subscriber that stayed full too long. */
  flush(): void {
    if (this.#closed) return;
    while (this.#queue.length > 0 && this.socket.bufferedAmount < this.limits.maxBufferedBytes) {
      let { message, text } = this.#queue.shift()!;
      if (this.#dropped > 0) {
        message = { ...message, dropped: this.#dropped } as ServerMessage;
        text = JSON.stringify(message);
        this.#dropped = 0;
      }
      this.#cork();
      this.socket.send(text, () => this.flush());
    }
    if (this.#queue.length === 0) {
      this.#stalledSince = undefined;
      return;
    }
    const now = this.now();
    this.#stalledSince ??= now;
    if (now - this.#stalledSince > this.limits.stallMs) {
      this.#closed = true;
      this.socket.close(1013, 'subscriber too slow: queue full');
      // close() waits for the peer; a stalled peer may never answer, so cut it off after a grace period.
      setTimeout(() => this.socket.terminate(), 1000).unref();
    }
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
  }

  /** Holds this turn's writes back and lets them go together once it ends (as Node's docs advise for cork). */
  #cork(): void {
    const stream = this.stream;
    if (stream === undefined || this.#corked) return;
    this.#corked = true;
    stream.cork();
    process.nextTick(() => {
      this.#corked = false;
      stream.uncork();
    });
  }
}
