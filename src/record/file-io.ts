import { type FileHandle, open, rm } from 'node:fs/promises';
import type { IReadable, IWritable } from '@mcap/core';

/**
 * McapWriter's sink: appends to a file and knows its own position. Each write goes straight to the OS, so what
 * McapWriter has handed over (the header, then every finished chunk) survives the process being killed.
 */
export class FileWritable implements IWritable {
  #position = 0n;

  private constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    /** Only a regular file is ever unlinked: `/dev/full` or a FIFO opened with overwrite must survive a failure. */
    private readonly regular: boolean,
  ) {}

  /** Opens `path` for writing; with `overwrite` false an existing file is an error (EEXIST) rather than lost. */
  static async open(path: string, overwrite: boolean): Promise<FileWritable> {
    const handle = await open(path, overwrite ? 'w' : 'wx');
    try {
      return new FileWritable(handle, path, (await handle.stat()).isFile());
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Closes and removes a file that never became a recording (its header could not be written). */
  async discard(): Promise<void> {
    try {
      await this.handle.close();
    } finally {
      if (this.regular) await rm(this.path, { force: true });
    }
  }

  async write(buffer: Uint8Array): Promise<void> {
    let done = 0;
    while (done < buffer.byteLength) {
      const { bytesWritten } = await this.handle.write(buffer, done, buffer.byteLength - done);
      done += bytesWritten;
    }
    this.#position += BigInt(buffer.byteLength);
  }

  position(): bigint {
    return this.#position;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Random-access reads for McapIndexedReader, plus sequential blocks for the streaming fallback. */
export class FileReadable implements IReadable {
  private constructor(
    private readonly handle: FileHandle,
    private readonly bytes: bigint,
  ) {}

  static async open(path: string): Promise<FileReadable> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      return new FileReadable(handle, BigInt(size));
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async size(): Promise<bigint> {
    return this.bytes;
  }

  async read(offset: bigint, size: bigint): Promise<Uint8Array> {
    if (offset + size > this.bytes)
      throw new RangeError(
        `read of ${size} bytes at ${offset} goes past the end of the file (${this.bytes} bytes)`,
      );
    const out = new Uint8Array(Number(size));
    let done = 0;
    while (done < out.byteLength) {
      const { bytesRead } = await this.handle.read(out, done, out.byteLength - done, Number(offset) + done);
      if (bytesRead === 0) throw new RangeError(`file ended at ${Number(offset) + done} while reading`);
      done += bytesRead;
    }
    return out;
  }

  /** Consecutive blocks from the start of the file, for readers that parse as they go. */
  async *blocks(blockBytes = 1 << 20): AsyncGenerator<Uint8Array> {
    for (let offset = 0n; offset < this.bytes; offset += BigInt(blockBytes)) {
      const remaining = this.bytes - offset;
      yield await this.read(offset, remaining < BigInt(blockBytes) ? remaining : BigInt(blockBytes));
    }
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
