export * from './aggregator.js';
export * from './align-windows.js';
export * from './options.js';
export * from './stream-state.js';
export * from './window-aligner.js';
export * from './windowing.js';
