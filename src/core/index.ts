export * from './errors.js';
export * from './events.js';
export * from './flow-credit.js';
export * from './logger.js';
export * from './random.js';
export * from './refusal.js';
export * from './time.js';
export * from './window.js';
