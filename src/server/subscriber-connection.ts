import { WebSocket } from 'ws';
import { describeZodError, type ErrorMessage, type ServerMessage, subscribeSchema } from './protocol.js';
import { ReplyLimiter } from './reply-limiter.js';
import { type Corkable, Subscriber, type SubscriberLimits } from './subscriber.js';
import type { SubscriberHub } from './subscriber-hub.js';

export interface SubscriberHooks {
  readonly hub: SubscriberHub;
  /** Ids of the streams open now (a subscribe is answered with those it names that are not). */
  readonly openStreams: () => readonly string[];
  /** The message a new subscriber gets first (the welcome). */
  readonly welcome: () => ServerMessage;
  readonly dropped: (n: number) => void;
  readonly rejected: (reason: string) => void;
  /** An error reply held back by the reply rate limit. */
  readonly suppressed: () => void;
}

/**
 * One subscriber socket: a bounded queue in the hub (see {@link Subscriber}), and its subscribe messages parsed and
 * validated; anything else is answered with an error naming the problem. `stream`: the upgraded socket under `ws`,
 * so that what one turn sends goes out in one write.
 */
export function attachSubscriber(
  ws: WebSocket,
  limits: SubscriberLimits,
  hooks: SubscriberHooks,
  stream?: Corkable,
): Subscriber {
  const subscriber = new Subscriber(ws, limits, hooks.dropped, undefined, stream);
  hooks.hub.add(subscriber);
  subscriber.send(hooks.welcome());
  // As a producer's: a flood of bad messages is answered at a capped rate, and through the subscriber's queue, so a
  // client that sends and never reads fills its queue and is closed as too slow instead of growing the send buffer.
  const replies = new ReplyLimiter();
  const refuse = (code: string, message: string) => {
    hooks.rejected(code);
    if (ws.readyState !== WebSocket.OPEN) return;
    const turn = replies.take(code);
    if (!turn.send) return hooks.suppressed();
    const error: ErrorMessage = { type: 'error', code, message };
    subscriber.send(turn.suppressed > 0 ? { ...error, suppressed: turn.suppressed } : error);
  };
  ws.on('message', (data, isBinary) => {
    if (isBinary)
      return refuse(
        'bad_message',
        'subscribers send JSON: {"subscribe": ["stream", ...]} or {"subscribe": "*"}, with "events": true for events',
      );
    let value: unknown;
    try {
      value = JSON.parse(String(data));
    } catch {
      return refuse('bad_json', 'message is not valid JSON');
    }
    const parsed = subscribeSchema.safeParse(value);
    if (!parsed.success) return refuse('bad_message', describeZodError(parsed.error));
    const streams = parsed.data.subscribe;
    subscriber.subscribe(streams, parsed.data);
    const open = new Set(hooks.openStreams());
    subscriber.send({
      type: 'subscribed',
      streams: streams === '*' ? '*' : [...streams],
      notOpen: streams === '*' ? [] : streams.filter((s) => !open.has(s)),
      ...subscriber.kinds,
    });
  });
  ws.on('error', () => {});
  ws.on('close', () => {
    subscriber.close();
    hooks.hub.delete(subscriber);
  });
  return subscriber;
}
