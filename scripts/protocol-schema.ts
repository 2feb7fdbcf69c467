// `npm run schema`: writes docs/protocol.schema.json from the protocol's zod schemas (a test checks it is current),
// formatted as biome formats JSON so that `biome ci` (run by .ci/run) accepts the generated file as it is.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { protocolJsonSchema } from '../src/server/protocol-schema.js';

const path = 'docs/protocol.schema.json';
writeFileSync(path, `${JSON.stringify(protocolJsonSchema(), null, 2)}\n`);
execFileSync('npx', ['biome', 'format', '--write', path], { stdio: 'inherit' });
console.log(`wrote ${path}`);
