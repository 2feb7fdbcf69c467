export * from './ingest-session.js';
export * from './metrics.js';
export * from './protocol.js';
export * from './server.js';
export * from './subscriber.js';
