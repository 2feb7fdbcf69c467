import type { DecompressHandlers } from '@mcap/core';
import { loadDecompressHandlers } from '@mcap/support';

/** Chunks larger than this are refused on reading: a damaged size field must not make us allocate gigabytes. */
const MAX_CHUNK_BYTES = 512 * 1024 * 1024;

let handlers: Promise<DecompressHandlers> | undefined;

/**
 * MCAP's chunk codecs for reading — zstd, lz4 and bz2, from @mcap/support — each behind a guard: a chunk claiming more
 * than 512 MiB is refused before anything is allocated, and one that decompresses to another size than its record
 * says is an error rather than a silent misread.
 */
export function loadDecompress(): Promise<DecompressHandlers> {
  handlers ??= loadDecompressHandlers().then((loaded) => {
    const guarded: DecompressHandlers = {};
    for (const [name, decompress] of Object.entries(loaded))
      guarded[name] = (buffer, decompressedSize) => {
        if (decompressedSize > BigInt(MAX_CHUNK_BYTES))
          throw new RangeError(
            `chunk claims ${decompressedSize} uncompressed bytes, over ${MAX_CHUNK_BYTES}`,
          );
        const out = decompress(buffer, decompressedSize);
        if (BigInt(out.byteLength) !== decompressedSize)
          throw new RangeError(
            `${name} chunk gave ${out.byteLength} bytes, its record says ${decompressedSize}`,
          );
        return out;
      };
    return guarded;
  });
  return handlers;
}
