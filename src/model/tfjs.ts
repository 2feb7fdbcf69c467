import * as tf from '@tensorflow/tfjs-core';

/**
 * tfjs-core, in production mode: without it the CPU backend greets every Node process on stderr ("Hi, looks like you
 * are running TensorFlow.js in Node.js...", braid's fast paths need no tfjs-node) and debug checks run. Every braid
 * module that uses tfjs imports it from here.
 */
tf.env().set('PROD', true);

export { tf };
