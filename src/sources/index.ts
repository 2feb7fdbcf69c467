export * from './audio-file.js';
export * from './child-process.js';
export * from './drop-counter.js';
export * from './microphone.js';
export * from './pcm-framer.js';
export * from './synthetic.js';
export * from './text.js';
export * from './video.js';
