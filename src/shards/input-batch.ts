import type { StreamInput } from '../core/events.js';

/**
 * One batch of a shard's inputs as a single transferable buffer. Structured cloning a few hundred event objects per
 * turn, each with its own typed array, was a third of the main thread's time at 256 streams (bench/profile.ts); the
 * frequent kinds (audio, video, progress bounds) are written into one ArrayBuffer that moves to the shard without a
 * copy, and everything else (text, labels, rare controls) is cloned as before, in its place in the order.
 */
export interface InputBatch {
  /** Every item's header and the audio/video bytes; transferred, so the sender must not touch it afterwards. */
  readonly bytes: ArrayBuffer;
  /** The stream ids the headers refer to by index. */
  readonly streamIds: readonly string[];
  /** Inputs left as objects, in order: each stands where a header says `other`. */
  readonly others: readonly StreamInput[];
  readonly count: number;
}

const OTHER = 0;
const PROGRESS = 1;
const AUDIO = 2;
const RAW_VIDEO = 3;
const COMPRESSED_VIDEO = 4;

const FORMATS = ['gray', 'rgb', 'jpeg', 'png'] as const;

/** kind u8, sub u8 (channels or format), pad u16, stream id index u32, time f64, seq f64, payload meta 8 bytes. */
const HEADER = 32;

const padded = (n: number): number => (n + 7) & ~7;

type Packed = Extract<StreamInput, { control: 'progress' } | { modality: 'audio' | 'video' }>;

/** Whether an input goes in the buffer: a progress bound, or audio or video whose fields fit their header slots. */
function isPacked(input: StreamInput): input is Packed {
  if ('control' in input) return input.control === 'progress';
  if (input.modality === 'audio')
    return input.payload.channels <= 0xff && input.payload.sampleRate <= 0xffffffff;
  if (input.modality !== 'video') return false;
  const video = input.payload;
  return !('width' in video) || (video.width <= 0xffff && video.height <= 0xffff);
}

/** Bytes an input takes in the buffer: its header and payload, or the 8 that mark an input left as an object. */
function itemBytes(input: StreamInput): number {
  if (!isPacked(input)) return 8;
  if ('control' in input) return HEADER;
  return (
    HEADER +
    padded(input.modality === 'audio' ? input.payload.samples.byteLength : input.payload.data.byteLength)
  );
}

/** Packs inputs for one shard, keeping their order. */
export function encodeInputs(inputs: readonly StreamInput[]): InputBatch {
  let size = 0;
  for (const input of inputs) size += itemBytes(input);
  const bytes = new ArrayBuffer(size);
  const view = new DataView(bytes);
  const u8 = new Uint8Array(bytes);
  const ids = new Map<string, number>();
  const streamIds: string[] = [];
  const others: StreamInput[] = [];
  const idOf = (id: string): number => {
    let index = ids.get(id);
    if (index === undefined) {
      index = streamIds.push(id) - 1;
      ids.set(id, index);
    }
    return index;
  };
  let at = 0;
  for (const input of inputs) {
    if (!isPacked(input)) {
      view.setUint8(at, OTHER);
      others.push(input);
      at += 8;
      continue;
    }
    view.setUint32(at + 4, idOf(input.streamId), true);
    view.setFloat64(at + 8, input.time, true);
    if ('control' in input) {
      view.setUint8(at, PROGRESS);
      at += HEADER;
      continue;
    }
    view.setFloat64(at + 16, input.seq, true);
    let payload: Uint8Array;
    if (input.modality === 'audio') {
      const { sampleRate, channels, samples } = input.payload;
      view.setUint8(at, AUDIO);
      view.setUint8(at + 1, channels);
      view.setUint32(at + 24, sampleRate, true);
      payload = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
    } else {
      const video = input.payload;
      view.setUint8(at + 1, FORMATS.indexOf(video.format));
      if (video.format === 'gray' || video.format === 'rgb') {
        view.setUint8(at, RAW_VIDEO);
        view.setUint16(at + 24, video.width, true);
        view.setUint16(at + 26, video.height, true);
      } else view.setUint8(at, COMPRESSED_VIDEO);
      payload = video.data;
    }
    view.setUint32(at + 28, payload.byteLength, true);
    u8.set(payload, at + HEADER);
    at += HEADER + padded(payload.byteLength);
  }
  return { bytes, streamIds, others, count: inputs.length };
}

/** The inputs of a batch, in order. Payloads are views of the batch's buffer (8-byte aligned), not copies. */
export function decodeInputs(batch: InputBatch): StreamInput[] {
  const { bytes, streamIds, others } = batch;
  const view = new DataView(bytes);
  const inputs: StreamInput[] = new Array(batch.count);
  let at = 0;
  let other = 0;
  for (let i = 0; i < batch.count; i++) {
    const kind = view.getUint8(at);
    if (kind === OTHER) {
      inputs[i] = others[other++] as StreamInput;
      at += 8;
      continue;
    }
    const streamId = streamIds[view.getUint32(at + 4, true)] as string;
    const time = view.getFloat64(at + 8, true);
    if (kind === PROGRESS) {
      inputs[i] = { control: 'progress', streamId, time };
      at += HEADER;
      continue;
    }
    const seq = view.getFloat64(at + 16, true);
    const length = view.getUint32(at + 28, true);
    const start = at + HEADER;
    if (kind === AUDIO)
      inputs[i] = {
        streamId,
        modality: 'audio',
        time,
        seq,
        payload: {
          sampleRate: view.getUint32(at + 24, true),
          channels: view.getUint8(at + 1),
          samples: new Int16Array(bytes, start, length / 2),
        },
      };
    else {
      const format = FORMATS[view.getUint8(at + 1)] as (typeof FORMATS)[number];
      const data = new Uint8Array(bytes, start, length);
      inputs[i] =
        kind === RAW_VIDEO
          ? {
              streamId,
              modality: 'video',
              time,
              seq,
              payload: {
                format: format as 'gray' | 'rgb',
                width: view.getUint16(at + 24, true),
                height: view.getUint16(at + 26, true),
                data,
              },
            }
          : { streamId, modality: 'video', time, seq, payload: { format: format as 'jpeg' | 'png', data } };
    }
    at += HEADER + padded(length);
  }
  return inputs;
}
