// fft.js ships no types. Only what braid uses is declared: the radix-4 real transform into preallocated arrays.
declare module 'fft.js' {
  type NumberArray = { [index: number]: number; readonly length: number };

  class FFT {
    constructor(size: number);
    readonly size: number;
    createComplexArray(): number[];
    /** Fills the left half of `out` (interleaved re, im for bins 0..size/2) with the FFT of the real `data`. */
    realTransform(out: NumberArray, data: NumberArray): void;
    completeSpectrum(spectrum: NumberArray): void;
    transform(out: NumberArray, data: NumberArray): void;
    inverseTransform(out: NumberArray, data: NumberArray): void;
  }

  export = FFT;
}
