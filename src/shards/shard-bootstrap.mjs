// Only when braid runs from its TypeScript sources (tests, tsx): Node 20 does not pass `--import tsx` on to a
// worker's entry module, so the shard thread registers tsx's loader itself before loading the shard's code.
import { register } from 'tsx/esm/api';

register();
await import('./shard-worker.ts');
