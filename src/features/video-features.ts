import { BadFrameError } from '../core/errors.js';
import { type AnySourceEvent, isDimension, type RawPixelFormat } from '../core/events.js';
import type { DropCounter } from '../sources/drop-counter.js';
import { type VideoFeatureConfig, videoFeatureSize } from './config.js';
import { AreaDownscaler } from './thumbnail.js';
import { MotionDescriptors, meanAbsDifference } from './video-descriptors.js';

/** Frame sizes whose downscalers are kept; a stream rarely changes size, so this only bounds pathological input. */
const MAX_CACHED_SIZES = 16;

interface RawFrame {
  readonly format: RawPixelFormat;
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/**
 * One window's video features from raw gray/rgb frames, layout
 * [thumbnail (thumbHeight × thumbWidth, row-major, 0..1) | motion mean | motion max | brightness | r | g | b |
 * descriptors]: the thumbnail (left out with `thumbnail: 'none'`) is the mean (or last) of the frames' area-averaged
 * luma thumbnails; the descriptors are those of video-descriptors.ts; motion is the mean absolute
 * difference between consecutive thumbnails of this window only (0 with one frame); brightness is the mean luma;
 * r, g, b are the mean colour (r = g = b for gray). JPEG/PNG must be decoded before alignment
 * ({@link decodeCompressedFrames}); here they are counted and skipped like any other unusable frame.
 */
export class VideoFeaturizer {
  readonly size: number;
  readonly #config: VideoFeatureConfig;
  readonly #drops: DropCounter;
  readonly #downscalers = new Map<string, AreaDownscaler>();
  readonly #sum: Float64Array;
  /** Sums over the window's frames of each frame's mean r, g, b. */
  readonly #colour = new Float64Array(3);
  #current: Float64Array;
  #previous: Float64Array;
  readonly #motion: MotionDescriptors | undefined;

  constructor(config: VideoFeatureConfig, drops: DropCounter) {
    this.#config = config;
    this.#drops = drops;
    const pixels = config.thumbWidth * config.thumbHeight;
    this.size = videoFeatureSize(config);
    if ((config.descriptors ?? []).length > 0)
      this.#motion = new MotionDescriptors(config.thumbWidth, config.thumbHeight);
    this.#sum = new Float64Array(pixels);
    this.#current = new Float64Array(pixels);
    this.#previous = new Float64Array(pixels);
  }

  featurize(events: readonly AnySourceEvent[]): Float32Array {
    const sum = this.#sum;
    sum.fill(0);
    let frames = 0;
    let motionSum = 0;
    let motionMax = 0;
    const colour = this.#colour;
    colour.fill(0);
    this.#motion?.reset();
    for (const event of events) {
      const frame = this.#usable(event);
      if (frame === null) continue;
      const current = this.#current;
      this.#downscaler(frame).downscale(frame.data, frame.format, current);
      if (frames > 0) {
        const motion = meanAbsDifference(current, this.#previous);
        motionSum += motion;
        if (motion > motionMax) motionMax = motion;
        this.#motion?.addPair(this.#previous, current, motion);
      }
      for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (current[i] as number);
      addMeanColour(frame, current, colour);
      this.#current = this.#previous;
      this.#previous = current;
      frames++;
    }
    if (frames === 0) return new Float32Array(0);
    return this.#write(frames, motionSum, motionMax);
  }

  #write(frames: number, motionSum: number, motionMax: number): Float32Array {
    const out = new Float32Array(this.size);
    const sum = this.#sum;
    const last = this.#previous;
    const { thumbnail } = this.#config;
    let brightness = 0;
    for (let i = 0; i < sum.length; i++) {
      const mean = (sum[i] as number) / frames;
      brightness += mean;
      if (thumbnail !== 'none') out[i] = thumbnail === 'last' ? (last[i] as number) : mean;
    }
    let o = thumbnail === 'none' ? 0 : sum.length;
    out[o++] = frames > 1 ? motionSum / (frames - 1) : 0;
    out[o++] = motionMax;
    out[o++] = brightness / sum.length;
    for (const c of this.#colour) out[o++] = c / frames;
    if (this.#motion !== undefined) this.#motion.write(this.#config.descriptors ?? [], out, o);
    return out;
  }

  #usable(event: AnySourceEvent): RawFrame | null {
    if (event.modality !== 'video')
      return this.#drop(event, 'wrong_modality', `expected a video event, got ${event.modality}`);
    const payload = event.payload;
    if (payload.format === 'jpeg' || payload.format === 'png')
      return this.#drop(
        event,
        'undecoded_image',
        `${payload.format} frames must be decoded before alignment (decodeCompressedFrames); got one in a window`,
      );
    // Checked field by field: the aligner may hand over events that never went through validateEvent.
    const { format, width, height, data } = payload as Partial<RawFrame>;
    if (format !== 'gray' && format !== 'rgb')
      return this.#drop(
        event,
        'bad_video_format',
        `raw video format must be gray or rgb, got ${String(format)}`,
      );
    if (!isDimension(width) || !isDimension(height))
      return this.#drop(
        event,
        'bad_video_size',
        `raw video needs integer width and height in 1..4096, got ${width}x${height}`,
      );
    const expected = width * height * (format === 'rgb' ? 3 : 1);
    if (!(data instanceof Uint8Array) || data.byteLength !== expected)
      return this.#drop(
        event,
        'bad_video_size',
        `raw ${format} ${width}x${height} frame needs ${expected} bytes, got ${data?.byteLength ?? 'none'}`,
      );
    return { format, width, height, data };
  }

  #drop(event: AnySourceEvent, reason: string, message: string): null {
    this.#drops.record(new BadFrameError(reason, message), event);
    return null;
  }

  #downscaler(frame: RawFrame): AreaDownscaler {
    const key = `${frame.width}x${frame.height}`;
    let downscaler = this.#downscalers.get(key);
    if (downscaler === undefined) {
      if (this.#downscalers.size >= MAX_CACHED_SIZES) this.#downscalers.clear();
      downscaler = new AreaDownscaler(
        frame.width,
        frame.height,
        this.#config.thumbWidth,
        this.#config.thumbHeight,
      );
      this.#downscalers.set(key, downscaler);
    }
    return downscaler;
  }
}

/**
 * Adds a frame's mean r, g, b in 0..1 (gray: its mean three times) to `into`. A gray frame's mean is its thumbnail's:
 * an area average keeps the mean, and the thumbnail has a sixteenth of the pixels to add up.
 */
function addMeanColour(frame: RawFrame, thumbnail: Float64Array, into: Float64Array): void {
  const data = frame.data;
  if (frame.format === 'gray') {
    let sum = 0;
    for (let i = 0; i < thumbnail.length; i++) sum += thumbnail[i] as number;
    const mean = sum / thumbnail.length;
    into[0] = (into[0] as number) + mean;
    into[1] = (into[1] as number) + mean;
    into[2] = (into[2] as number) + mean;
    return;
  }
  let r = 0;
  let g = 0;
  let b = 0;
  for (let i = 0; i < data.length; i += 3) {
    r += data[i] as number;
    g += data[i + 1] as number;
    b += data[i + 2] as number;
  }
  const scale = 3 / data.length / 255;
  into[0] = (into[0] as number) + r * scale;
  into[1] = (into[1] as number) + g * scale;
  into[2] = (into[2] as number) + b * scale;
}
