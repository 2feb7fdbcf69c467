import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/events.js';
import { mulberry32 } from '../../src/core/random.js';
import { FunctionBuilder, moduleBytes, op } from '../../src/core/wasm-encoding.js';
import {
  type AudioFeatureConfig,
  AudioFeaturizer,
  createAudioAnalyser,
  DEFAULT_FEATURE_CONFIG,
  parseFeatureConfig,
  wasmSimdSupported,
} from '../../src/features/index.js';
import { emitLogF64x2 } from '../../src/features/simd-log.js';
import { DropCounter } from '../../src/sources/drop-counter.js';

// The WebAssembly SIMD kernel performs the JavaScript path's floating-point operations in the same order, so the
// two must agree bit for bit — not within a tolerance — on every input and config.

/** Fails naming the first value whose bits differ (Object.is: −0 ≠ 0), and how many differ. */
function expectSameBits(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let first = -1;
  let count = 0;
  for (let i = 0; i < expected.length; i++)
    if (!Object.is(actual[i], expected[i])) {
      if (first < 0) first = i;
      count++;
    }
  if (count > 0)
    expect.fail(`${what}: ${count} values differ, first at ${first}: ${actual[first]} vs ${expected[first]}`);
}

function speechPcm(): Int16Array {
  const bytes = readFileSync(new URL('../fixtures/features/speech-16k.s16le', import.meta.url));
  const pcm = new Int16Array(bytes.byteLength / 2);
  for (let i = 0; i < pcm.length; i++) pcm[i] = bytes.readInt16LE(2 * i);
  return pcm;
}

function noise(length: number, seed: number, amplitude = 32768): Int16Array {
  const next = mulberry32(seed);
  return Int16Array.from({ length }, () =>
    Math.max(-32768, Math.min(32767, Math.floor((next() * 2 - 1) * amplitude))),
  );
}

type Rows = (pcm: Int16Array) => Float64Array;

/** A kernel's frame rows for whole blocks, reusing one analyser (and its buffers) across calls. */
function rowsOf(config: AudioFeatureConfig, kernel: 'wasm-simd' | 'js'): Rows {
  const analyser = createAudioAnalyser(config, kernel);
  return (pcm) => {
    analyser.reserve(pcm.length).set(pcm);
    return analyser.frameRows(pcm.length);
  };
}

describe('emitLogF64x2 (fdlibm log as f64x2)', () => {
  const f = new FunctionBuilder('log', 2, 2, 64);
  const [p, x] = [f.i32(), f.v128()];
  f.emit(op.get(0), op.set(p));
  f.loop(p, 16, [...op.get(0), ...op.get(1), ...op.i32Add], () => {
    f.emit(op.get(p), op.v128Load(0), op.set(x));
    emitLogF64x2(f, x);
    f.emit(op.get(p), op.get(x), op.v128Store(0));
  });
  const memory = new WebAssembly.Memory({ initial: 64 });
  const module = new WebAssembly.Module(moduleBytes([f.build()]));
  const log = new WebAssembly.Instance(module, { env: { memory } }).exports['log'] as (
    at: number,
    bytes: number,
  ) => void;
  const logs = (values: Float64Array): Float64Array => {
    const view = new Float64Array(memory.buffer, 0, values.length);
    view.set(values);
    log(0, 8 * values.length);
    return Float64Array.from(view);
  };
  const next = mulberry32(7);
  const many = (make: () => number): Float64Array => Float64Array.from({ length: 100_000 }, make);

  it.each([
    ['across the whole range', () => Math.exp((next() - 0.5) * 1400)],
    ['within 2^-20 of 1 (the short-series branch)', () => 1 + (next() - 0.5) * 4e-6],
    ['near powers of two', () => 2 ** Math.floor(next() * 200 - 100) * (1 + (next() - 0.5) * 4e-6)],
    ['subnormal', () => next() * 2.2e-308],
    ['mel power + 1e-6, as log-mel sees it', () => next() * 10 ** (next() * 11 - 6) + 1e-6],
  ])('gives Math.log bit for bit %s', (_name, make) => {
    const values = many(make);
    expectSameBits(logs(values), values.map(Math.log), 'log');
  });

  it('gives Math.log bit for bit at every power of two and at the edges', () => {
    const values = Float64Array.from([
      ...Array.from({ length: 2098 }, (_, e) => 2 ** (e - 1074)),
      1,
      Math.SQRT2,
      Math.SQRT1_2,
      1e-6,
      Number.MIN_VALUE,
      2.2250738585072014e-308,
      Number.MAX_VALUE,
    ]);
    expectSameBits(logs(values), values.map(Math.log), 'log');
  });
});

describe('the log-mel SIMD kernel and the JavaScript path', () => {
  const config = DEFAULT_FEATURE_CONFIG.audio;
  const simd = rowsOf(config, 'wasm-simd');
  const js = rowsOf(config, 'js');
  const speech = speechPcm();

  it('is the default wherever WebAssembly SIMD compiles, which Node 20 does', () => {
    expect(wasmSimdSupported).toBe(true);
    expect(new AudioFeaturizer(config, new DropCounter()).kernel).toBe('wasm-simd');
  });

  it.each([speech.length, 16_000, 8_000, 561, 560, 559, 401, 400, 399, 160, 1])(
    'give the same bits on real speech, %i samples (odd lengths, short blocks)',
    (length) => {
      const pcm = speech.subarray(0, length);
      expectSameBits(simd(pcm), js(pcm), `speech[0, ${length})`);
    },
  );

  it.each([
    ['silence', new Int16Array(16_000)],
    ['constant full scale', new Int16Array(16_000).fill(32767)],
    ['constant negative full scale', new Int16Array(16_000).fill(-32768)],
    ['full-scale Nyquist', Int16Array.from({ length: 16_000 }, (_, i) => (i % 2 ? -32768 : 32767))],
    ['full-scale square wave', Int16Array.from({ length: 16_000 }, (_, i) => (i % 64 < 32 ? 32767 : -32768))],
    ['full-range white noise', noise(16_000, 1)],
    ['quiet noise (±2 LSB)', noise(12_345, 2, 3)],
    ['a single click', Int16Array.from({ length: 8_000 }, (_, i) => (i === 4321 ? 32767 : 0))],
  ])('give the same bits on %s', (name, pcm) => {
    expectSameBits(simd(pcm), js(pcm), name);
  });

  it('stay equal window after window, through memory growth (60 s) and back to short windows', () => {
    for (const [i, length] of [16_000, 960_000, 399, 8_000, 1, 48_000].entries()) {
      const pcm = noise(length, 10 + i);
      expectSameBits(simd(pcm), js(pcm), `window ${i} (${length} samples)`);
    }
  });

  it('produce the same window features, every aggregate, from the same events (bad frames skipped alike)', () => {
    const all = {
      ...config,
      melAggregates: ['mean', 'max', 'min', 'std'],
      rmsAggregates: ['std', 'min', 'max', 'mean'],
    } as const;
    const [simdDrops, jsDrops] = [new DropCounter(), new DropCounter()];
    const simdFeatures = new AudioFeaturizer(all, simdDrops, 'wasm-simd');
    const jsFeatures = new AudioFeaturizer(all, jsDrops, 'js');
    const event = (seq: number, samples: Int16Array, sampleRate = 16_000): AnySourceEvent => ({
      streamId: 's',
      modality: 'audio',
      time: seq * 20_000,
      seq,
      payload: { sampleRate, channels: 1, samples },
    });
    for (let w = 0; w < 6; w++) {
      const events = Array.from({ length: 25 }, (_, e) => {
        const start = (w * 25 + e) * 320;
        return event(
          e,
          speech.subarray(start % (speech.length - 320), (start % (speech.length - 320)) + 320),
        );
      });
      events.splice(3, 0, event(99, new Int16Array(320), 8_000)); // skipped: wrong rate
      expectSameBits(simdFeatures.featurize(events), jsFeatures.featurize(events), `window ${w}`);
    }
    expect(simdDrops.snapshot()).toEqual(jsDrops.snapshot());
    expect(simdDrops.count('unsupported_sample_rate')).toBe(6);
  });

  it('give the same bits for any valid config: FFT sizes with radix-2 and radix-4 first passes, empty and odd bands, subnormal logEps', () => {
    const configs = fc
      .record({
        log2: fc.integer({ min: 2, max: 11 }),
        frameFraction: fc.double({ min: 0, max: 1, noNaN: true }),
        hopFraction: fc.double({ min: 0.05, max: 2, noNaN: true }),
        melBands: fc.integer({ min: 1, max: 48 }),
        sampleRate: fc.constantFrom(8_000, 16_000, 44_100),
        band: fc.tuple(
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
        ),
        logEps: fc.constantFrom(1e-6, 1e-12, 1e-310, 1),
      })
      .filter(({ band: [a, b] }) => Math.abs(a - b) > 1e-3)
      .map((c) => {
        const fftSize = 2 ** c.log2;
        const frameLength = Math.max(1, Math.round(c.frameFraction * fftSize));
        const [lo, hi] = [Math.min(...c.band), Math.max(...c.band)];
        return parseFeatureConfig({
          ...DEFAULT_FEATURE_CONFIG,
          audio: {
            ...DEFAULT_FEATURE_CONFIG.audio,
            sampleRate: c.sampleRate,
            fftSize,
            frameLength,
            hopLength: Math.max(1, Math.round(c.hopFraction * frameLength)),
            melBands: c.melBands,
            fMin: (lo * c.sampleRate) / 2,
            fMax: (hi * c.sampleRate) / 2,
            logEps: c.logEps,
          },
        }).audio;
      });
    fc.assert(
      fc.property(configs, fc.integer({ min: 1, max: 5_000 }), fc.integer(), (audio, length, seed) => {
        const pcm = noise(length, seed, seed % 2 ? 32768 : 64);
        expectSameBits(rowsOf(audio, 'wasm-simd')(pcm), rowsOf(audio, 'js')(pcm), JSON.stringify(audio));
      }),
      { numRuns: 60 },
    );
  });
});
