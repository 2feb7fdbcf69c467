import { isStreamControl, type StreamInput } from '../core/events.js';
import type { InputRefusal } from '../core/refusal.js';
import type { SubscriberHub } from './subscriber-hub.js';

/** Whoever feeds a stream and should hear what the pipeline refused of it (a producer connection). */
export interface StreamOwner {
  refused(refusal: InputRefusal): void;
}

/**
 * The streams a server knows: which are open (announced to subscribers as opened and closed) and which producer
 * owns each, so that two producers cannot feed one stream and refusals reach the right socket.
 */
export class StreamDirectory {
  readonly #open = new Set<string>();
  readonly #owners = new Map<string, StreamOwner>();

  constructor(private readonly hub: SubscriberHub) {}

  get size(): number {
    return this.#open.size;
  }

  list(): string[] {
    return [...this.#open];
  }

  /** Notes an input on its way to the pipeline: a stream's first input or open announces it, a close ends it. */
  note(input: StreamInput): void {
    const { streamId } = input;
    if (isStreamControl(input) && input.control === 'close') {
      if (this.#open.delete(streamId)) this.hub.broadcast({ type: 'stream', event: 'closed', streamId });
      return;
    }
    if (this.#open.has(streamId)) return;
    if (isStreamControl(input) && input.control !== 'open') return;
    this.#open.add(streamId);
    this.hub.broadcast({ type: 'stream', event: 'opened', streamId });
  }

  claim(streamId: string, owner: StreamOwner): boolean {
    if (this.#owners.has(streamId)) return false;
    this.#owners.set(streamId, owner);
    return true;
  }

  release(streamId: string, owner: StreamOwner): void {
    if (this.#owners.get(streamId) === owner) this.#owners.delete(streamId);
  }

  ownerOf(streamId: string): StreamOwner | undefined {
    return this.#owners.get(streamId);
  }
}
