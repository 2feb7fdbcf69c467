import { BraidError } from '../core/errors.js';
import type { AnySourceEvent, StreamInput } from '../core/events.js';
import type { Prediction } from '../core/window.js';

/**
 * One input as a stream entry: `i`, the input without its binary payload (JSON, a few dozen bytes), and `b`, the
 * payload's bytes as they arrived (PCM16 samples, raw pixels, a JPEG/PNG file) — no JSON or base64 inflation.
 */
export function encodeInput(input: StreamInput): (string | Buffer)[] {
  if ('control' in input) return ['i', JSON.stringify(input)];
  const e = input as AnySourceEvent;
  if (e.modality === 'audio') {
    const { samples, ...rest } = e.payload;
    return [
      'i',
      JSON.stringify({ ...e, payload: rest }),
      'b',
      Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength),
    ];
  }
  if (e.modality === 'video') {
    const { data, ...rest } = e.payload;
    return [
      'i',
      JSON.stringify({ ...e, payload: rest }),
      'b',
      Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    ];
  }
  return ['i', JSON.stringify(e)];
}

/** The input of a stream entry's fields (as XREAD returns them: name, value, name, value...). */
export function decodeInput(fields: readonly Buffer[]): StreamInput {
  let head: Buffer | undefined;
  let body: Buffer | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = (fields[i] as Buffer).toString();
    if (name === 'i') head = fields[i + 1];
    else if (name === 'b') body = fields[i + 1];
  }
  if (head === undefined)
    throw new BraidError('BRAID_ERR_CLUSTER', 'stream entry without an input (field "i")');
  const input = JSON.parse(head.toString()) as Record<string, unknown> & {
    payload?: Record<string, unknown>;
  };
  if (body !== undefined && input.payload) {
    if (input['modality'] === 'audio') {
      // Copy: an Int16Array needs an even byte offset, and the reply's buffer is shared.
      const samples = new Int16Array(body.byteLength / 2);
      new Uint8Array(samples.buffer).set(body);
      input.payload = { ...input.payload, samples };
    } else input.payload = { ...input.payload, data: new Uint8Array(body) };
  }
  return input as unknown as StreamInput;
}

/** A committed prediction as a stream entry's value (JSON). */
/** A stream's end in a partition's output: after its last prediction, so a gateway can say `closed` in order. */
export interface StreamEnd {
  readonly end: string;
}
export type OutputEntry = Prediction | StreamEnd;

export const isStreamEnd = (entry: OutputEntry): entry is StreamEnd => 'end' in entry;
export const encodePrediction = (p: OutputEntry): string => JSON.stringify(p);
export const decodePrediction = (value: Buffer | string): OutputEntry =>
  JSON.parse(String(value)) as OutputEntry;
