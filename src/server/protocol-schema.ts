import { z } from 'zod';
import {
  closeMessageSchema,
  errorMessageSchema,
  helloSchema,
  labelMessageSchema,
  predictionMessageSchema,
  progressMessageSchema,
  readyMessageSchema,
  resetMessageSchema,
  streamMessageSchema,
  subscribedMessageSchema,
  subscribeSchema,
  textMessageSchema,
  welcomeMessageSchema,
} from './protocol.js';

/** Every JSON message of the protocol, by direction, as JSON Schema (2020-12) generated from the zod schemas. */
export function protocolJsonSchema(): Record<string, unknown> {
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'braid WebSocket protocol, version 2',
    description:
      'JSON messages of /ingest and /subscribe (docs/protocol.md). Generated from src/server/protocol.ts by `npm run schema`; do not edit.',
    producerToServer: {
      hello: schema(helloSchema),
      text: schema(textMessageSchema),
      label: schema(labelMessageSchema),
      progress: schema(progressMessageSchema),
      reset: schema(resetMessageSchema),
      close: schema(closeMessageSchema),
    },
    subscriberToServer: { subscribe: schema(subscribeSchema) },
    serverToClient: {
      ready: schema(readyMessageSchema),
      welcome: schema(welcomeMessageSchema),
      subscribed: schema(subscribedMessageSchema),
      prediction: schema(predictionMessageSchema),
      stream: schema(streamMessageSchema),
      error: schema(errorMessageSchema),
    },
  };
}
