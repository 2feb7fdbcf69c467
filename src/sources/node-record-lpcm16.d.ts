// node-record-lpcm16 ships no types. Declared: what braid uses of its 1.x API.
declare module 'node-record-lpcm16' {
  import type { ChildProcess } from 'node:child_process';
  import type { Readable } from 'node:stream';

  interface RecordOptions {
    sampleRate?: number;
    channels?: number;
    /** 'sox' | 'rec' | 'arecord' (a module under the package's recorders/). */
    recorder?: string;
    /** arecord: `-D device`; sox: the AUDIODEV environment variable. */
    device?: string;
    /** Passed as the recorder's output type: 'raw' gives headerless PCM. */
    audioType?: string;
    endOnSilence?: boolean;
  }

  interface Recording {
    readonly process: ChildProcess;
    stream(): Readable;
    stop(): void;
  }

  const lpcm: { record(options?: RecordOptions): Recording };
  export = lpcm;
}
