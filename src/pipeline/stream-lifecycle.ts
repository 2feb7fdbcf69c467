import type { CreditLane } from '../core/flow-credit.js';

/**
 * A stream's lifecycle as the pipeline's output sees it: `open` when its open control or first event enters the
 * pipeline (in input order, before any stage can delay it), `end` once it has closed and its last window has come out
 * as a prediction (or was dropped). Every `end` follows an `open` of the same stream; a stream may open again later.
 */
export interface StreamMark {
  readonly streamId: string;
  readonly state: 'open' | 'end';
}

interface Pending {
  /** Windows of the stream that went to the model, and those that came back (predicted or dropped). */
  taken: number;
  done: number;
  /** Values of `taken` at which the stream closed: when `done` reaches one, that close is complete. */
  readonly closes: number[];
}

/**
 * Follows every stream through one pipeline run: which are open at the input, how many of their windows are between
 * the aligner and the model's output, and when a closed stream's last window is out. State is kept only for streams
 * open or with windows in flight, so it is freed as streams end. Windows in flight spend credits of `lane` when given
 * (a replay's FlowCredit), so a producer that waits on them never queues more windows than the lane allows.
 */
export class StreamLifecycle {
  readonly #open = new Set<string>();
  readonly #pending = new Map<string, Pending>();
  #inFlight = 0;

  constructor(
    private readonly mark: (mark: StreamMark) => void,
    private readonly lane?: CreditLane,
  ) {}

  /** Streams open at the input, and streams with windows in flight or a close not yet complete. */
  get size(): { open: number; pending: number; windowsInFlight: number } {
    return { open: this.#open.size, pending: this.#pending.size, windowsInFlight: this.#inFlight };
  }

  /** An input passed (an event, or an open/close control). */
  input(streamId: string, control?: string): void {
    if (control === 'close') {
      this.#open.delete(streamId);
      return;
    }
    if (this.#open.has(streamId)) return;
    this.#open.add(streamId);
    this.mark({ streamId, state: 'open' });
  }

  /** A window of the stream went to the model. */
  window(streamId: string): void {
    this.#entry(streamId).taken += 1;
    this.#inFlight += 1;
    this.lane?.take();
  }

  /** A window of the stream came out of the model: predicted, or dropped. */
  done(streamId: string): void {
    const p = this.#pending.get(streamId);
    if (p === undefined || p.done >= p.taken) return;
    p.done += 1;
    this.#inFlight -= 1;
    this.lane?.give();
    while (p.closes.length > 0 && (p.closes[0] as number) <= p.done) {
      p.closes.shift();
      this.mark({ streamId, state: 'end' });
    }
    this.#forgetIfIdle(streamId, p);
  }

  /** The aligner closed the stream, after its last window. */
  closed(streamId: string): void {
    const p = this.#entry(streamId);
    if (p.done >= p.taken && p.closes.length === 0) this.mark({ streamId, state: 'end' });
    else p.closes.push(p.taken);
    this.#forgetIfIdle(streamId, p);
  }

  /** The run ended or was torn down: windows still in flight will not come back, so their credits return. */
  dispose(): void {
    if (this.#inFlight > 0) this.lane?.give(this.#inFlight);
    this.#inFlight = 0;
    this.#pending.clear();
    this.#open.clear();
  }

  #entry(streamId: string): Pending {
    let p = this.#pending.get(streamId);
    if (p === undefined) {
      p = { taken: 0, done: 0, closes: [] };
      this.#pending.set(streamId, p);
    }
    return p;
  }

  #forgetIfIdle(streamId: string, p: Pending): void {
    if (p.done === p.taken && p.closes.length === 0) this.#pending.delete(streamId);
  }
}
