import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import sharp from 'sharp';
import { BadFrameError, InvalidOptionError } from '../core/errors.js';
import type { RawPixelFormat, SourceEvent } from '../core/events.js';
import type { DropCounter } from '../sources/drop-counter.js';

export interface DecodeFramesOptions {
  /** Counts dropped images: `empty_image`, `corrupt_image`, `decode_backlog`. */
  readonly drops: DropCounter;
  /** Size of the raw frames produced (default 16×12, the default thumbnail, so features need no further resize). */
  readonly width?: number;
  readonly height?: number;
  /** `gray` (default) or `rgb` to keep colour for the mean-colour features. */
  readonly format?: RawPixelFormat;
  /** Images decoded at once (default 4, the size of libuv's thread pool that runs sharp). */
  readonly concurrency?: number;
  /** Images waiting or decoding before further ones are dropped as `decode_backlog` (default 256). */
  readonly maxPending?: number;
  /** Largest decoded image accepted, in pixels (default 4096 × 4096, as raw frames). */
  readonly maxInputPixels?: number;
}

type CompressedVideo = SourceEvent<'video'> & { readonly payload: { readonly format: 'jpeg' | 'png' } };

const isCompressedVideo = (value: unknown): value is CompressedVideo => {
  if (typeof value !== 'object' || value === null) return false;
  const event = value as { modality?: unknown; payload?: { format?: unknown } };
  return event.modality === 'video' && (event.payload?.format === 'jpeg' || event.payload?.format === 'png');
};

const streamKey = (value: unknown): string => {
  const id = (value as { streamId?: unknown } | null)?.streamId;
  return typeof id === 'string' ? id : '';
};

interface Slot<T> {
  state: 'pending' | 'ready' | 'dropped';
  value: T;
}

function positiveInteger(name: string, value: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max)
    throw new InvalidOptionError(name, `must be an integer in 1..${max}, got ${value}`);
  return value;
}

/**
 * Maps JPEG/PNG video events to raw frames of a small size, before alignment (sharp is asynchronous, a window
 * aggregator is not). Decodes straight to the target size in one sharp call, so JPEG shrink-on-load does most of
 * the work, with at most `concurrency` images in flight. Everything else passes through untouched. Each stream's
 * order is kept: an event waits only behind images of its own stream still decoding. Empty or corrupt images are
 * counted in `drops` and dropped; the stream goes on.
 */
export function decodeCompressedFrames<T>(options: DecodeFramesOptions): MonoTypeOperatorFunction<T> {
  const width = positiveInteger('width', options.width ?? 16, 4096);
  const height = positiveInteger('height', options.height ?? 12, 4096);
  const format = options.format ?? 'gray';
  if (format !== 'gray' && format !== 'rgb')
    throw new InvalidOptionError('format', `must be gray or rgb, got ${String(format)}`);
  const concurrency = positiveInteger('concurrency', options.concurrency ?? 4, 256);
  const maxPending = positiveInteger('maxPending', options.maxPending ?? 256, 1 << 20);
  const maxInputPixels = positiveInteger('maxInputPixels', options.maxInputPixels ?? 4096 * 4096, 1 << 30);
  const { drops } = options;
  const decode = (data: Uint8Array): Promise<Uint8Array> =>
    decodeToRaw(data, { width, height, format, maxInputPixels });

  return (source) =>
    new Observable<T>((subscriber) => {
      const queues = new Map<string, Slot<T>[]>();
      const waiting: (() => void)[] = [];
      let running = 0;
      let pending = 0;
      let sourceDone = false;

      const flush = (key: string): void => {
        const queue = queues.get(key);
        if (queue === undefined) return;
        while (queue.length > 0 && queue[0]?.state !== 'pending') {
          const slot = queue.shift() as Slot<T>;
          if (slot.state === 'ready') subscriber.next(slot.value);
        }
        if (queue.length === 0) queues.delete(key);
      };
      const maybeComplete = (): void => {
        if (sourceDone && pending === 0) subscriber.complete();
      };
      const startNext = (): void => {
        while (running < concurrency && waiting.length > 0) (waiting.shift() as () => void)();
      };

      const enqueue = (event: CompressedVideo, key: string): void => {
        const slot: Slot<T> = { state: 'pending', value: event as T };
        const queue = queues.get(key) ?? [];
        queue.push(slot);
        queues.set(key, queue);
        pending++;
        waiting.push(() => {
          running++;
          decode(event.payload.data)
            .then((data) => {
              slot.value = { ...event, payload: { format, width, height, data } } as T;
              slot.state = 'ready';
            })
            .catch((error: unknown) => {
              drops.record(badImage(event, error));
              slot.state = 'dropped';
            })
            .finally(() => {
              running--;
              pending--;
              if (subscriber.closed) return;
              flush(key);
              startNext();
              maybeComplete();
            });
        });
        startNext();
      };

      const subscription = source.subscribe({
        next(value) {
          const key = streamKey(value);
          if (!isCompressedVideo(value)) {
            const queue = queues.get(key);
            if (queue === undefined) subscriber.next(value);
            else queue.push({ state: 'ready', value });
            return;
          }
          if (value.payload.data.byteLength === 0) {
            drops.record(
              new BadFrameError(
                'empty_image',
                `${describe(value)}: ${value.payload.format} image has 0 bytes`,
              ),
            );
            return;
          }
          if (pending >= maxPending) {
            drops.record(
              new BadFrameError(
                'decode_backlog',
                `${describe(value)}: ${pending} images already waiting to be decoded`,
              ),
            );
            return;
          }
          enqueue(value, key);
        },
        error(error: unknown) {
          subscriber.error(error);
        },
        complete() {
          sourceDone = true;
          maybeComplete();
        },
      });
      return () => {
        waiting.length = 0;
        subscription.unsubscribe();
      };
    });
}

interface DecodeTarget {
  readonly width: number;
  readonly height: number;
  readonly format: RawPixelFormat;
  readonly maxInputPixels: number;
}

/**
 * One sharp call: decode (JPEG shrink-on-load does most of the downscale), fill the target size, drop alpha, raw
 * bytes. Colour to grey is done here on the 16×12 result (Rec. 601 luma, as the video features use) rather than by
 * sharp's greyscale(), whose colourspace pipeline costs more per call than decoding a 320×240 JPEG.
 */
async function decodeToRaw(data: Uint8Array, target: DecodeTarget): Promise<Uint8Array> {
  const { data: raw, info } = await sharp(data, {
    sequentialRead: true,
    limitInputPixels: target.maxInputPixels,
    failOn: 'error',
  })
    .resize(target.width, target.height, { fit: 'fill' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const pixels = target.width * target.height;
  if (
    info.width !== target.width ||
    info.height !== target.height ||
    (info.channels !== 1 && info.channels !== 3)
  )
    throw new Error(
      `decoded to ${info.width}x${info.height} with ${info.channels} channels, expected 1 (grey) or 3 (sRGB)`,
    );
  if (target.format === 'gray') return info.channels === 1 ? new Uint8Array(raw) : rgbToLuma(raw, pixels);
  return info.channels === 3 ? new Uint8Array(raw) : greyToRgb(raw, pixels);
}

function rgbToLuma(rgb: Uint8Array, pixels: number): Uint8Array {
  const grey = new Uint8Array(pixels);
  for (let i = 0, p = 0; i < pixels; i++, p += 3)
    grey[i] = Math.round(
      0.299 * (rgb[p] as number) + 0.587 * (rgb[p + 1] as number) + 0.114 * (rgb[p + 2] as number),
    );
  return grey;
}

function greyToRgb(grey: Uint8Array, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) rgb.fill(grey[i] as number, 3 * i, 3 * i + 3);
  return rgb;
}

const describe = (event: CompressedVideo): string => `stream "${event.streamId}" video seq ${event.seq}`;

function badImage(event: CompressedVideo, error: unknown): BadFrameError {
  const cause = error instanceof Error ? error.message : String(error);
  return new BadFrameError(
    'corrupt_image',
    `${describe(event)}: cannot decode ${event.payload.format}: ${cause}`,
  );
}
