// `npm run schema`: writes docs/protocol.schema.json from the protocol's zod schemas (a test checks it is current).
import { writeFileSync } from 'node:fs';
import { protocolJsonSchema } from '../src/server/protocol-schema.js';

writeFileSync('docs/protocol.schema.json', `${JSON.stringify(protocolJsonSchema(), null, 2)}\n`);
console.log('wrote docs/protocol.schema.json');
