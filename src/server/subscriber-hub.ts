import type { ServerMessage } from './protocol.js';
import type { Subscriber } from './subscriber.js';

/** Every connected subscriber; one broadcast serialises a message once for all who want it. */
export class SubscriberHub {
  readonly #subscribers = new Set<Subscriber>();

  get size(): number {
    return this.#subscribers.size;
  }

  add(subscriber: Subscriber): void {
    this.#subscribers.add(subscriber);
  }

  delete(subscriber: Subscriber): void {
    this.#subscribers.delete(subscriber);
  }

  /**
   * Sends to every subscriber that wants the stream (all, without one) and, for predictions and events, that kind of
   * message; says whether anyone got it.
   */
  broadcast(message: ServerMessage, streamId?: string): boolean {
    const kind = message.type === 'prediction' || message.type === 'event' ? message.type : undefined;
    let text: string | undefined;
    for (const s of this.#subscribers)
      if (streamId === undefined || s.wants(streamId, kind)) {
        text ??= JSON.stringify(message);
        s.send(message, text);
      }
    return text !== undefined;
  }

  /** Gives every queue a chance to drain, and every stalled subscriber its check. */
  flush(): void {
    for (const s of this.#subscribers) s.flush();
  }
}
