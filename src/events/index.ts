export * from './event-tracker.js';
export * from './label-state.js';
export * from './model-events.js';
export * from './ordered-events.js';
export * from './settings.js';
