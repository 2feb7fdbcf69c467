/** Cuts a byte stream into frames of a fixed size, copying each into its own array (raw video, PCM frames). */
export class FixedSizeChunker {
  readonly #size: number;
  #frame: Uint8Array;
  #filled = 0;

  constructor(size: number) {
    this.#size = size;
    this.#frame = new Uint8Array(size);
  }

  get partialBytes(): number {
    return this.#filled;
  }

  /** The whole frames completed by `chunk`; each is a fresh array of its own (offset 0, exactly `size` bytes). */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (offset < chunk.byteLength) {
      const take = Math.min(this.#size - this.#filled, chunk.byteLength - offset);
      this.#frame.set(chunk.subarray(offset, offset + take), this.#filled);
      this.#filled += take;
      offset += take;
      if (this.#filled === this.#size) {
        frames.push(this.#frame);
        this.#frame = new Uint8Array(this.#size);
        this.#filled = 0;
      }
    }
    return frames;
  }

  /** Hands over the bytes of the unfinished frame (a copy) and starts afresh. */
  takePartial(): Uint8Array {
    const partial = this.#frame.slice(0, this.#filled);
    this.#filled = 0;
    return partial;
  }
}
