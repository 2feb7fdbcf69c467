import { MAX_TIME_MICROS } from './time.js';

/**
 * The binary frame of braid's WebSocket protocol, one audio or video payload with its capture time and seq:
 * [format u8 = 1][modality u8: 1 audio, 2 video][flags u8][reserved u8][time µs f64][seq u32][payload],
 * little-endian.
 * Shared by the server, which decodes it, and the client library, which encodes it: the one copy of the format.
 * Depends on nothing but this folder, so browsers load it as it is.
 */
export const FRAME_FORMAT = 1;
export const FRAME_HEADER_BYTES = 16;
export const FRAME_MODALITY = { audio: 1, video: 2 } as const;
/**
 * Flag: the frame is also a progress bound at its end — every event of the stream captured before it has been sent,
 * all modalities — so a producer whose audio flows needs no progress messages of its own (one message, not two).
 */
export const FRAME_FLAG_BOUND = 1;
const KNOWN_FLAGS = FRAME_FLAG_BOUND;

export interface BinaryFrame {
  readonly modality: 'audio' | 'video';
  readonly time: number;
  readonly seq: number;
  readonly payload: Uint8Array;
  /** A progress bound at the frame's end (FRAME_FLAG_BOUND); absent or false: none. */
  readonly bound?: boolean;
}

export function encodeFrame(frame: BinaryFrame): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + frame.payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, FRAME_FORMAT);
  view.setUint8(1, FRAME_MODALITY[frame.modality]);
  if (frame.bound) view.setUint8(2, FRAME_FLAG_BOUND);
  view.setFloat64(4, frame.time, true);
  view.setUint32(12, frame.seq, true);
  out.set(frame.payload, FRAME_HEADER_BYTES);
  return out;
}

/** What is wrong with a frame that cannot be read: a stable reason and a message naming what was found. */
export interface FrameProblem {
  readonly reason: 'short_frame' | 'bad_version' | 'bad_modality' | 'bad_flags' | 'bad_time';
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
  // A flag this server does not know would change what the frame means: refused, not ignored.
  const flags = view.getUint8(2);
  if ((flags & ~KNOWN_FLAGS) !== 0)
    return {
      reason: 'bad_flags',
      message: `binary frame flags 0x${flags.toString(16)}: only 0x${FRAME_FLAG_BOUND.toString(16)} (bound) is known`,
    };
  const time = view.getFloat64(4, true);
  if (!Number.isInteger(time) || time < 0 || time > MAX_TIME_MICROS)
    return { reason: 'bad_time', message: `binary frame time ${time} is not a whole number of µs in range` };
  const seq = view.getUint32(12, true);
  const payload = data.subarray(FRAME_HEADER_BYTES);
  return flags & FRAME_FLAG_BOUND
    ? { modality, time, seq, payload, bound: true }
    : { modality, time, seq, payload };
}
