import { MAX_TIME_MICROS } from './time.js';

/**
 * The binary frame of braid's WebSocket protocol, one audio or video payload with its capture time and seq:
 * [format u8 = 1][modality u8: 1 audio, 2 video][reserved u16][time µs f64][seq u32][payload], little-endian.
 * Shared by the server, which decodes it, and the client library, which encodes it: the one copy of the format.
 * Depends on nothing but this folder, so browsers load it as it is.
 */
export const FRAME_FORMAT = 1;
export const FRAME_HEADER_BYTES = 16;
export const FRAME_MODALITY = { audio: 1, video: 2 } as const;

export interface BinaryFrame {
  readonly modality: 'audio' | 'video';
  readonly time: number;
  readonly seq: number;
  readonly payload: Uint8Array;
}

export function encodeFrame(frame: BinaryFrame): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + frame.payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, FRAME_FORMAT);
  view.setUint8(1, FRAME_MODALITY[frame.modality]);
  view.setFloat64(4, frame.time, true);
  view.setUint32(12, frame.seq, true);
  out.set(frame.payload, FRAME_HEADER_BYTES);
  return out;
}

/** What is wrong with a frame that cannot be read: a stable reason and a message naming what was found. */
export interface FrameProblem {
  readonly reason: 'short_frame' | 'bad_version' | 'bad_modality' | 'bad_time';
  readonly message: string;
}

export function parseFrame(data: Uint8Array): BinaryFrame | FrameProblem {
  if (data.byteLength < FRAME_HEADER_BYTES)
    return {
      reason: 'short_frame',
      message: `binary frame of ${data.byteLength} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header`,
    };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const format = view.getUint8(0);
  if (format !== FRAME_FORMAT)
    return { reason: 'bad_version', message: `binary frame format ${format}, expected ${FRAME_FORMAT}` };
  const code = view.getUint8(1);
  const modality = code === 1 ? 'audio' : code === 2 ? 'video' : undefined;
  if (modality === undefined)
    return {
      reason: 'bad_modality',
      message: `binary frame modality byte ${code}, expected 1 (audio) or 2 (video)`,
    };
  const time = view.getFloat64(4, true);
  if (!Number.isInteger(time) || time < 0 || time > MAX_TIME_MICROS)
    return { reason: 'bad_time', message: `binary frame time ${time} is not a whole number of µs in range` };
  return { modality, time, seq: view.getUint32(12, true), payload: data.subarray(FRAME_HEADER_BYTES) };
}
