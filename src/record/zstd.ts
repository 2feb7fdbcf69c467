import { compress, init } from '@bokuweb/zstd-wasm';

export interface ZstdCompressor {
  /** McapWriter's `compressChunk`. */
  readonly compressChunk: (data: Uint8Array) => { compression: string; compressedData: Uint8Array };
}

// The WASM module is process-wide state inside @bokuweb/zstd-wasm; loading it once is all init() allows anyway.
let ready: Promise<void> | undefined;

/**
 * Loads zstd's WASM once and returns the MCAP chunk compressor built on it (reading goes through @mcap/support's
 * handlers, see decompress.ts: none of those compresses).
 */
export async function loadZstd(level = 3): Promise<ZstdCompressor> {
  ready ??= init();
  await ready;
  return { compressChunk: (data) => ({ compression: 'zstd', compressedData: compress(data, level) }) };
}
