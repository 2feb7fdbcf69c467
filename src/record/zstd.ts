import { compress, decompress, init } from '@bokuweb/zstd-wasm';
import type { DecompressHandlers } from '@mcap/core';

/** Chunks larger than this are refused on reading: a damaged size field must not make us allocate gigabytes. */
const MAX_CHUNK_BYTES = 512 * 1024 * 1024;

export interface ZstdCodec {
  readonly compressChunk: (data: Uint8Array) => { compression: string; compressedData: Uint8Array };
  readonly decompressHandlers: DecompressHandlers;
}

// The WASM module is process-wide state inside @bokuweb/zstd-wasm; loading it once is all init() allows anyway.
let ready: Promise<void> | undefined;

/** Loads zstd's WASM once and returns the MCAP compress function and decompress handler built on it. */
export async function loadZstd(level = 3): Promise<ZstdCodec> {
  ready ??= init();
  await ready;
  return {
    compressChunk: (data) => ({ compression: 'zstd', compressedData: compress(data, level) }),
    decompressHandlers: {
      zstd: (buffer, decompressedSize) => {
        if (decompressedSize > BigInt(MAX_CHUNK_BYTES))
          throw new RangeError(
            `chunk claims ${decompressedSize} uncompressed bytes, over ${MAX_CHUNK_BYTES}`,
          );
        const size = Number(decompressedSize);
        const out = decompress(buffer, { defaultHeapSize: Math.max(size, 1) });
        if (out.byteLength !== size)
          throw new RangeError(`zstd chunk gave ${out.byteLength} bytes, its record says ${size}`);
        return out;
      },
    },
  };
}
