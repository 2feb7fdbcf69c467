import type {
  ErrorMessage,
  PredictionMessage,
  ServerMessage,
  StreamMessage,
  WelcomeMessage,
} from '../server/protocol.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { drop, endpointUrl, type SocketFactory, type SocketLike, socketFactory } from './socket.js';

export interface SubscribeOptions {
  /** The server: http(s)://host:port or ws(s)://host:port (/subscribe is added). */
  readonly url: string;
  readonly token?: string;
  /** Stream ids, or '*' for all. */
  readonly streams: '*' | readonly string[];
  /** Also ask for each label's on/off events (docs/events.md); they come to `onMessage`, in order with the rest. */
  readonly events?: boolean;
  readonly reconnect?: BackoffOptions;
  /** A connection that has not been welcomed by then (ms) is dropped and made again (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Predictions held for a consumer that iterates slower than they come (default 10,000); the oldest go first. */
  readonly maxQueue?: number;
  readonly WebSocket?: SocketFactory;
  /** Every other message: welcome, subscribed, events, stream opened/closed/suspended/resumed, errors. */
  readonly onMessage?: (message: WelcomeMessage | StreamMessage | ErrorMessage | ServerMessage) => void;
  readonly onStatus?: (
    status: 'connecting' | 'subscribed' | 'reconnecting' | 'closed',
    detail?: string,
  ) => void;
}

/** Predictions as an async iterator; `close()` (or leaving a for-await loop) ends it. */
export interface Subscription extends AsyncIterable<PredictionMessage> {
  /** The server's latest welcome; rejects when the subscription gives up or is closed before one came. */
  readonly welcome: Promise<WelcomeMessage>;
  readonly stats: { received: number; dropped: number; reconnects: number };
  close(): void;
}

/**
 * Subscribes to predictions, reconnecting with exponential backoff and jitter and subscribing again after each
 * reconnect; predictions made while it was away are not replayed (the `dropped` counts the server reported and the
 * ones this queue shed are in `stats`). In Node, a connection whose server pings stop for 2.5 heartbeats is dropped
 * and made again.
 */
export function subscribe(options: SubscribeOptions): Subscription {
  const queue: PredictionMessage[] = [];
  const waiting: ((r: IteratorResult<PredictionMessage>) => void)[] = [];
  const stats = { received: 0, dropped: 0, reconnects: 0 };
  const maxQueue = options.maxQueue ?? 10_000;
  let socket: SocketLike | undefined;
  let closed = false;
  let attempt = 0;
  let watchdog: ReturnType<typeof setInterval> | undefined;
  let lastPing = Date.now();
  let welcomed!: (w: WelcomeMessage) => void;
  let unwelcomed!: (error: Error) => void;
  /** The current welcome promise has settled: a reconnect starts a new one (one waited on before it is kept). */
  let welcomeSettled = false;
  const awaitWelcome = () => {
    welcomeSettled = false;
    const next = new Promise<WelcomeMessage>((resolve, reject) => {
      welcomed = (w) => {
        welcomeSettled = true;
        resolve(w);
      };
      unwelcomed = reject;
    });
    // Nobody need be waiting on it: a rejection of a welcome no one asked for is not an unhandled one.
    next.catch(() => {});
    return next;
  };
  let welcome = awaitWelcome();
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;

  const deliver = (p: PredictionMessage) => {
    stats.received++;
    const next = waiting.shift();
    if (next) return next({ value: p, done: false });
    queue.push(p);
    if (queue.length > maxQueue) {
      queue.shift();
      stats.dropped++;
    }
  };
  const end = () => {
    for (const w of waiting.splice(0)) w({ value: undefined, done: true });
  };

  const open = (factory: SocketFactory) => {
    if (closed) return;
    options.onStatus?.(attempt === 0 && stats.reconnects === 0 ? 'connecting' : 'reconnecting');
    const s = factory(endpointUrl(options.url, '/subscribe', options.token));
    socket = s;
    const connectTimer = setTimeout(() => drop(s), options.connectTimeoutMs ?? 10_000);
    s.addEventListener('open', () => {
      s.send(JSON.stringify({ subscribe: options.streams, ...(options.events && { events: true }) }));
    });
    s.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      const m = JSON.parse(event.data) as ServerMessage;
      // The server puts what it dropped for this subscriber on whatever message goes out next.
      const dropped = (m as { dropped?: number }).dropped;
      if (dropped) stats.dropped += dropped;
      if (m.type === 'prediction') return deliver(m);
      if (m.type === 'welcome') {
        clearTimeout(connectTimer);
        welcomed(m);
        clearInterval(watchdog);
        lastPing = Date.now();
        if (s.on !== undefined)
          watchdog = setInterval(() => {
            if (Date.now() - lastPing > 2.5 * m.heartbeatMs) drop(s);
          }, m.heartbeatMs);
      }
      if (m.type === 'subscribed') {
        attempt = 0;
        options.onStatus?.('subscribed');
      }
      options.onMessage?.(m);
    });
    s.on?.('ping', () => {
      lastPing = Date.now();
    });
    s.addEventListener('error', () => {});
    s.addEventListener('close', () => {
      clearTimeout(connectTimer);
      clearInterval(watchdog);
      if (closed || s !== socket) return;
      const max = options.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY;
      if (attempt >= max) {
        closed = true;
        options.onStatus?.('closed', `gave up after ${attempt} attempts`);
        unwelcomed(new Error(`could not connect to ${options.url}: gave up after ${attempt} attempts`));
        return end();
      }
      const delay = backoffDelay(attempt++, options.reconnect);
      stats.reconnects++;
      if (welcomeSettled) welcome = awaitWelcome();
      reconnectTimer = setTimeout(() => {
        if (!closed) open(factory);
      }, delay);
    });
  };
  void socketFactory(options.WebSocket).then(open);

  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(watchdog);
    clearTimeout(reconnectTimer);
    socket?.close(1000, 'done');
    options.onStatus?.('closed');
    unwelcomed(new Error('the subscription was closed before a welcome'));
    end();
  };

  return {
    get welcome() {
      return welcome;
    },
    stats,
    close,
    [Symbol.asyncIterator]: () => ({
      next: () => {
        const p = queue.shift();
        if (p) return Promise.resolve({ value: p, done: false });
        if (closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => waiting.push(resolve));
      },
      return: () => {
        close();
        return Promise.resolve({ value: undefined, done: true });
      },
    }),
  };
}
