// braid/client: a producer and a subscriber for Node and browsers. It depends on nothing but the protocol's frame
// format (src/core/frame.ts); in Node 20 it uses the `ws` package, elsewhere the platform's WebSocket.

export { encodeFrame } from '../core/frame.js';
export type {
  ErrorMessage,
  PredictionMessage,
  ReadyMessage,
  ServerMessage,
  StreamMessage,
  SubscribedMessage,
  WelcomeMessage,
} from '../server/protocol.js';
export { type BackoffOptions, backoffDelay } from './backoff.js';
export {
  connectProducer,
  type FrameOptions,
  Producer,
  type ProducerOptions,
  type ProducerStats,
  type ProducerStatus,
} from './producer.js';
export type { SocketFactory, SocketLike } from './socket.js';
export { type SubscribeOptions, type Subscription, subscribe } from './subscriber.js';
export { frameSamplesToWindowEnd, sampleIndexAt, type WindowGrid, windowEndAfter } from './window-grid.js';
