import type { WebSocket } from 'ws';

/**
 * ws ping/pong on every connection, one timer for all of them: each tick pings every socket; one that has not
 * answered the last two pings is terminated (its TCP connection died without a close, or its peer hangs), which
 * fires its `close` event with code 1006 so its owner can react (a producer's stream is then suspended).
 */
export class Heartbeat {
  readonly #missed = new Map<WebSocket, number>();
  readonly #timer: NodeJS.Timeout;
  terminated = 0;

  constructor(
    readonly intervalMs: number,
    private readonly onTerminated: (ws: WebSocket) => void = () => {},
  ) {
    this.#timer = setInterval(() => this.#tick(), intervalMs);
    this.#timer.unref();
  }

  watch(ws: WebSocket): void {
    this.#missed.set(ws, 0);
    ws.on('pong', () => {
      if (this.#missed.has(ws)) this.#missed.set(ws, 0);
    });
    ws.once('close', () => this.#missed.delete(ws));
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#missed.clear();
  }

  #tick(): void {
    for (const [ws, missed] of this.#missed) {
      if (missed >= 2) {
        this.#missed.delete(ws);
        this.terminated++;
        this.onTerminated(ws);
        ws.terminate();
        continue;
      }
      this.#missed.set(ws, missed + 1);
      try {
        ws.ping();
      } catch {
        // A socket closing right now: its close event removes it.
      }
    }
  }
}
