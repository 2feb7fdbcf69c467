// fft.js ships no types. Only what braid uses is declared: the radix-4 transforms into preallocated arrays, and the
// twiddle table, which the log-mel SIMD kernel copies so that its transform rounds exactly as fft.js's does.
declare module 'fft.js' {
  type NumberArray = { [index: number]: number; readonly length: number };

  class FFT {
    constructor(size: number);
    readonly size: number;
    /** cos(πi/size), −sin(πi/size) interleaved, i = 0, 2, 4... (2·size values). */
    readonly table: readonly number[];
    createComplexArray(): number[];
    /** Fills the left half of `out` (interleaved re, im for bins 0..size/2) with the FFT of the real `data`. */
    realTransform(out: NumberArray, data: NumberArray): void;
    completeSpectrum(spectrum: NumberArray): void;
    transform(out: NumberArray, data: NumberArray): void;
    inverseTransform(out: NumberArray, data: NumberArray): void;
  }

  export = FFT;
}
