import { Worker } from 'node:worker_threads';
import type { ShardSetup } from './shard-messages.js';

/**
 * Starts the thread of one shard. Built (dist/), the worker is shard-worker.js beside this file; from the TypeScript
 * sources, shard-bootstrap.mjs registers tsx's loader in the thread first.
 */
export function startShardThread(setup: ShardSetup): Worker {
  const here = import.meta.url;
  const entry = here.endsWith('.ts') ? './shard-bootstrap.mjs' : './shard-worker.js';
  return new Worker(new URL(entry, here), { workerData: setup });
}
