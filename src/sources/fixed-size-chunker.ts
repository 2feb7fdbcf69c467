/**
 * Cuts a byte stream into frames of a fixed size (raw video), or of the size `size()` gives as each frame starts (PCM
 * frames ending on window ends), copying each into its own array.
 */
export class FixedSizeChunker {
  readonly #size: () => number;
  #frame: Uint8Array | undefined;
  #filled = 0;

  constructor(size: number | (() => number)) {
    this.#size = typeof size === 'number' ? () => size : size;
  }

  get partialBytes(): number {
    return this.#filled;
  }

  /** The whole frames completed by `chunk`; each is a fresh array of its own (offset 0, exactly its size). */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (offset < chunk.byteLength) {
      this.#frame ??= new Uint8Array(this.#size());
      const take = Math.min(this.#frame.byteLength - this.#filled, chunk.byteLength - offset);
      this.#frame.set(chunk.subarray(offset, offset + take), this.#filled);
      this.#filled += take;
      offset += take;
      if (this.#filled === this.#frame.byteLength) {
        frames.push(this.#frame);
        this.#frame = undefined;
        this.#filled = 0;
      }
    }
    return frames;
  }

  /** Hands over the bytes of the unfinished frame (a copy) and starts afresh. */
  takePartial(): Uint8Array {
    const partial = this.#frame?.slice(0, this.#filled) ?? new Uint8Array(0);
    this.#frame = undefined;
    this.#filled = 0;
    return partial;
  }
}
