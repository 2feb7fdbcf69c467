import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { protocolJsonSchema } from '../../src/server/protocol-schema.js';

describe('published protocol schema', () => {
  it('docs/protocol.schema.json is what the zod schemas generate (run npm run schema after changing them)', () => {
    const committed = JSON.parse(readFileSync('docs/protocol.schema.json', 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(protocolJsonSchema())));
    const messages = Object.keys({ ...committed.producerToServer, ...committed.serverToClient });
    expect(messages).toEqual(
      expect.arrayContaining([
        'hello',
        'text',
        'label',
        'progress',
        'reset',
        'close',
        'ready',
        'welcome',
        'subscribed',
        'prediction',
        'stream',
        'error',
      ]),
    );
  });
});
