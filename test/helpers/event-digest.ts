import { createHash } from 'node:crypto';
import type { AnySourceEvent } from '../../src/core/events.js';

/** sha256 over every event's identity and payload bytes, in order: pins what a reader made of a file. */
export function eventDigest(events: Iterable<AnySourceEvent>): string {
  const hash = createHash('sha256');
  for (const e of events) {
    hash.update(`${e.streamId}|${e.modality}|${e.time}|${e.seq}|`);
    const p = e.payload;
    if (e.modality === 'audio') {
      hash.update(`${e.payload.sampleRate}|${e.payload.channels}|`);
      hash.update(
        new Uint8Array(e.payload.samples.buffer, e.payload.samples.byteOffset, e.payload.samples.byteLength),
      );
    } else if (e.modality === 'video') {
      const v = e.payload;
      hash.update('width' in v ? `${v.format}|${v.width}x${v.height}|` : `${v.format}|`);
      hash.update(v.data);
    } else hash.update(JSON.stringify(p));
    hash.update('\n');
  }
  return hash.digest('hex');
}
