import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { frameSamplesToWindowEnd, sampleIndexAt, windowEndAfter } from '../../src/client/window-grid.js';

describe('window grid arithmetic for producers', () => {
  const grid = { origin: 51_046, size: 500_000, hop: 500_000 };

  it('gives the first window end strictly after a time, on either side of the origin', () => {
    // Windows end at origin + size + k·hop for every integer k: 51,046 is the end of window −1.
    expect(windowEndAfter(grid, 0)).toBe(51_046);
    expect(windowEndAfter(grid, 51_045)).toBe(51_046);
    expect(windowEndAfter(grid, 51_046)).toBe(551_046); // on an end: the next one
    expect(windowEndAfter(grid, -1_000_000)).toBe(-948_954);
    // Overlapping windows end every hop.
    expect(windowEndAfter({ origin: 0, size: 1_000_000, hop: 250_000 }, 1_000_000)).toBe(1_250_000);
  });

  it('is a window end, after the time, with no window end between', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 999_999 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: -1e12, max: 1e12 }),
        (origin, overlap, hop, time) => {
          const g = { origin, size: hop * overlap, hop };
          const end = windowEndAfter(g, time);
          expect(end).toBeGreaterThan(time);
          expect(end - g.hop).toBeLessThanOrEqual(time);
          expect((((end - origin - g.size) % hop) + hop) % hop).toBe(0);
        },
      ),
    );
  });

  it('cuts a frame whose bound, as the server stamps it, lands at or after the end and holds no sample past it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1e13 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.constantFrom(8000, 11_025, 16_000, 22_050, 44_100, 48_000),
        (start, ahead, rate) => {
          const time = start + ahead;
          const n = sampleIndexAt(start, time, rate);
          // The server's bound for n samples from start: start + floor(n·1e6/rate).
          expect(start + Math.floor((n * 1e6) / rate)).toBeGreaterThanOrEqual(time);
          // Sample n − 1 was captured before `time`.
          if (n > 0) expect(start + ((n - 1) * 1e6) / rate).toBeLessThan(time);
        },
      ),
    );
  });

  it('frames audio so that a frame ends on every window end, each within half and one and a half frames', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1e12 }),
        fc.integer({ min: 0, max: 999_999 }),
        fc.constantFrom(8000, 16_000, 44_100, 48_000),
        fc.constantFrom(100_000, 500_000, 1_000_000),
        (start, origin, rate, hop) => {
          const g = { origin, size: hop, hop };
          const size = Math.round(rate / 50);
          const frameEnds = new Set<number>();
          const lengths: number[] = [];
          let samples = 0;
          const timeOf = (n: number) => start + Math.floor((n * 1e6) / rate);
          while (timeOf(samples) < start + 3 * hop) {
            const n = frameSamplesToWindowEnd(g, timeOf(samples), rate, size);
            lengths.push(n);
            samples += n;
            frameEnds.add(timeOf(samples));
          }
          // Each window end from the second on is the end of a frame: the first sample at or after it starts one.
          for (let end = windowEndAfter(g, start + hop); end < timeOf(samples); end += hop) {
            const first = sampleIndexAt(start, end, rate);
            expect(frameEnds.has(timeOf(first))).toBe(true);
          }
          expect(lengths.slice(1).every((n) => n >= size / 2 && n <= Math.ceil(size * 1.5))).toBe(true);
        },
      ),
    );
  });
});
