// braid's public API, one stage per line.
export * from './align/index.js';
export * from './core/index.js';
export * from './features/index.js';
export * from './model/index.js';
export * from './pipeline/prediction-order.js';
export * from './pipeline/prediction-pipeline.js';
export type { StreamMark } from './pipeline/stream-lifecycle.js';
export * from './record/index.js';
export * from './server/index.js';
export * from './sources/index.js';
