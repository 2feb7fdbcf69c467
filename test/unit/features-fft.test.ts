import fc from 'fast-check';
import FFT from 'fft.js';
import { describe, expect, it } from 'vitest';
import { RealPowerSpectrum } from '../../src/features/real-fft.js';

/** fft.js's own real transform, completed to the full spectrum: the reference for the half-length split. */
function referencePower(frame: Float64Array): Float64Array {
  const fft = new FFT(frame.length);
  const out = fft.createComplexArray();
  fft.realTransform(out, Array.from(frame));
  fft.completeSpectrum(out);
  return Float64Array.from(
    { length: frame.length / 2 + 1 },
    (_, k) => out[2 * k]! ** 2 + out[2 * k + 1]! ** 2,
  );
}

describe('RealPowerSpectrum', () => {
  it('matches fft.js realTransform at every bin, DC and Nyquist included, for sizes 4..1024', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 10 }),
        fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 1024, maxLength: 1024 }),
        (log2, values) => {
          const size = 2 ** log2;
          const frame = Float64Array.from(values.slice(0, size));
          const power = new Float64Array(size / 2 + 1);
          new RealPowerSpectrum(size).compute(frame, power);
          const expected = referencePower(frame);
          const scale = expected.reduce((m, v) => Math.max(m, v), 1);
          for (let k = 0; k < power.length; k++)
            expect(Math.abs(power[k]! - expected[k]!)).toBeLessThan(1e-9 * scale);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('puts a constant in bin 0 and an alternating sequence in the Nyquist bin', () => {
    const spectrum = new RealPowerSpectrum(8);
    const power = new Float64Array(5);
    spectrum.compute(new Float64Array(8).fill(0.5), power);
    expect([...power].map((v) => Number(v.toFixed(12)))).toEqual([16, 0, 0, 0, 0]);
    spectrum.compute(
      Float64Array.from({ length: 8 }, (_, i) => (i % 2 ? -1 : 1)),
      power,
    );
    expect([...power].map((v) => Number(v.toFixed(12)))).toEqual([0, 0, 0, 0, 64]);
  });

  it('rejects sizes that are not powers of two ≥ 4', () => {
    expect(() => new RealPowerSpectrum(2)).toThrow(RangeError);
    expect(() => new RealPowerSpectrum(400)).toThrow(/power of two/);
  });
});
