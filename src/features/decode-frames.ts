import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import { BadFrameError, InvalidOptionError } from '../core/errors.js';
import { isStreamControl, type RawPixelFormat, type SourceEvent } from '../core/events.js';
import type { CreditLane } from '../core/flow-credit.js';
import type { DropCounter } from '../sources/drop-counter.js';
import { LUMA_B, LUMA_G, LUMA_R } from './thumbnail.js';

export interface DecodeFramesOptions {
  /** Counts dropped events: `bad_video`, `empty_image`, `corrupt_image`, `decode_backlog`. */
  readonly drops: DropCounter;
  /** Size of the raw frames produced (default 16×12, the default thumbnail, so features need no further resize). */
  readonly width?: number;
  readonly height?: number;
  /** `gray` (default) or `rgb` to keep colour for the mean-colour features. */
  readonly format?: RawPixelFormat;
  /** Images decoded at once (default 4, the size of libuv's thread pool that runs sharp). */
  readonly concurrency?: number;
  /**
   * Events held at once (images waiting or decoding, and events of their streams queued behind them) before further
   * ones are dropped as `decode_backlog` (default 256); stream controls are always kept.
   */
  readonly maxPending?: number;
  /**
   * Events one stream may hold of those (default a quarter of `maxPending`; all of it under a `credit`, where one
   * producer waits on them): a stream sending images slow to decode drops its own events as `decode_backlog`, not
   * other streams'. Decode slots also go round the streams, so one stream's queue of images does not delay the rest.
   */
  readonly maxPendingPerStream?: number;
  /** Largest decoded image accepted, in pixels (default 4096 × 4096, as raw frames). */
  readonly maxInputPixels?: number;
  /**
   * Credits of a producer that waits (a replay): every event held here spends one, returned when it is emitted or
   * dropped. A producer that honours them (see FlowCredit) never meets a full `maxPending`, so nothing is dropped as
   * `decode_backlog`, at any speed. Give the lane `maxPending` credits.
   */
  readonly credit?: CreditLane;
}

type CompressedVideo = SourceEvent<'video'> & {
  readonly payload: { readonly format: 'jpeg' | 'png'; readonly data: Uint8Array };
};

/** A video event that says it carries a JPEG/PNG image, whether or not its bytes are really there. */
const claimsImage = (value: unknown): boolean => {
  if (typeof value !== 'object' || value === null) return false;
  const event = value as { modality?: unknown; payload?: { format?: unknown } | null };
  return event.modality === 'video' && (event.payload?.format === 'jpeg' || event.payload?.format === 'png');
};

const isCompressedVideo = (value: unknown): value is CompressedVideo =>
  claimsImage(value) && (value as { payload: { data?: unknown } }).payload.data instanceof Uint8Array;

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
 * order is kept: an event waits only behind images of its own stream still decoding. Empty, corrupt or malformed
 * images are counted in `drops` and dropped; the stream goes on. A source error is passed on once the images
 * already taken in are decoded and emitted, so nothing accepted is lost silently.
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
  const { drops, credit } = options;
  const perStream = positiveInteger(
    'maxPendingPerStream',
    options.maxPendingPerStream ?? (credit ? maxPending : Math.ceil(maxPending / 4)),
    maxPending,
  );
  if (credit && credit.credits > maxPending)
    throw new InvalidOptionError(
      'credit',
      `has ${credit.credits} credits, more than maxPending ${maxPending}: a producer honouring them would still meet a full queue`,
    );
  const decode = (data: Uint8Array): Promise<Uint8Array> =>
    decodeToRaw(data, { width, height, format, maxInputPixels });

  return (source) =>
    new Observable<T>((subscriber) => {
      const queues = new Map<string, Slot<T>[]>();
      /** Decodes waiting for a slot, by stream; a stream that got one goes to the back (Map order). */
      const waiting = new Map<string, (() => void)[]>();
      let running = 0;
      /** Images waiting for or in a decode: the operator completes (or errors) once none is left. */
      let decoding = 0;
      /** Everything held in the queues: images and the events of their streams waiting behind them. */
      let held = 0;
      let sourceDone = false;
      let sourceError: { readonly error: unknown } | undefined;

      const flush = (key: string): void => {
        const queue = queues.get(key);
        if (queue === undefined) return;
        while (queue.length > 0 && queue[0]?.state !== 'pending') {
          const slot = queue.shift() as Slot<T>;
          held--;
          credit?.give();
          if (slot.state === 'ready') subscriber.next(slot.value);
        }
        if (queue.length === 0) queues.delete(key);
      };
      const maybeFinish = (): void => {
        if (!sourceDone || decoding > 0) return;
        if (sourceError) subscriber.error(sourceError.error);
        else subscriber.complete();
      };
      const startNext = (): void => {
        while (running < concurrency && waiting.size > 0) {
          const [key, starts] = waiting.entries().next().value as [string, (() => void)[]];
          const start = starts.shift() as () => void;
          waiting.delete(key);
          if (starts.length > 0) waiting.set(key, starts);
          start();
        }
      };
      /** Whether `key` may hold one more event: the total and its own share both have room. */
      const full = (key: string): string | undefined =>
        held >= maxPending
          ? `${held} events already held behind images being decoded (maxPending ${maxPending})`
          : (queues.get(key)?.length ?? 0) >= perStream
            ? `this stream holds ${perStream} events behind its images being decoded (maxPendingPerStream ${perStream})`
            : undefined;
      const hold = (key: string, slot: Slot<T>): void => {
        const queue = queues.get(key) ?? [];
        queue.push(slot);
        queues.set(key, queue);
        held++;
        credit?.take();
      };
      const backlog = (value: unknown, what: string, why: string): void =>
        drops.record(
          new BadFrameError('decode_backlog', `${describeAny(value)}: ${what} dropped, ${why}`),
          value,
        );

      const enqueue = (event: CompressedVideo, key: string): void => {
        const slot: Slot<T> = { state: 'pending', value: event as T };
        hold(key, slot);
        decoding++;
        const starts = waiting.get(key) ?? [];
        if (starts.length === 0) waiting.set(key, starts);
        starts.push(() => {
          running++;
          decode(event.payload.data)
            .then((data) => {
              slot.value = { ...event, payload: { format, width, height, data } } as T;
              slot.state = 'ready';
            })
            .catch((error: unknown) => {
              drops.record(badImage(event, error), event);
              slot.state = 'dropped';
            })
            .finally(() => {
              running--;
              decoding--;
              if (subscriber.closed) return;
              // Downstream may throw from next(); it must reach the subscriber, not become an unhandled rejection.
              try {
                flush(key);
                startNext();
                maybeFinish();
              } catch (error) {
                subscriber.error(error);
              }
            });
        });
        startNext();
      };

      const accept = (value: T): void => {
        const key = streamKey(value);
        if (!claimsImage(value)) {
          if (!queues.has(key)) return subscriber.next(value);
          // Stream controls (close, reset...) are never dropped: losing one would leak a stream's state downstream.
          const why = isStreamControl(value) ? undefined : full(key);
          if (why !== undefined) return backlog(value, 'event', why);
          return hold(key, { state: 'ready', value });
        }
        if (!isCompressedVideo(value)) {
          drops.record(
            new BadFrameError(
              'bad_video',
              `${describeAny(value)}: image payload.data must be a Uint8Array of JPEG/PNG bytes, got ${typeName((value as { payload: { data?: unknown } }).payload.data)}`,
            ),
            value,
          );
          return;
        }
        if (value.payload.data.byteLength === 0) {
          drops.record(
            new BadFrameError(
              'empty_image',
              `${describeAny(value)}: ${value.payload.format} image has 0 bytes`,
            ),
            value,
          );
          return;
        }
        const why = full(key);
        if (why !== undefined) return backlog(value, 'image', why);
        enqueue(value, key);
      };

      const subscription = source.subscribe({
        next(value) {
          // An exception here would escape RxJS as an uncaught error on a timer and end the process.
          try {
            accept(value);
          } catch (error) {
            subscriber.error(error);
          }
        },
        error(error: unknown) {
          sourceDone = true;
          sourceError = { error };
          maybeFinish();
        },
        complete() {
          sourceDone = true;
          maybeFinish();
        },
      });
      return () => {
        waiting.clear();
        subscription.unsubscribe();
        // What is still held is gone with this subscription: its credits go back, so a shared producer is not stuck.
        if (held > 0) credit?.give(held);
        held = 0;
        queues.clear();
      };
    });
}

type Sharp = typeof import('sharp')['default'];
let sharpModule: Promise<Sharp> | undefined;
/** sharp (libvips) is loaded on the first image, not when braid is imported: most streams send raw frames. */
const loadSharp = (): Promise<Sharp> => (sharpModule ??= import('sharp').then((m) => m.default));

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
  const sharp = await loadSharp();
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
      LUMA_R * (rgb[p] as number) + LUMA_G * (rgb[p + 1] as number) + LUMA_B * (rgb[p + 2] as number),
    );
  return grey;
}

function greyToRgb(grey: Uint8Array, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) rgb.fill(grey[i] as number, 3 * i, 3 * i + 3);
  return rgb;
}

/** Names an event that may be malformed, for a drop message. */
function describeAny(value: unknown): string {
  const e = value as { streamId?: unknown; modality?: unknown; seq?: unknown };
  return `stream "${String(e.streamId)}" ${String(e.modality)} seq ${String(e.seq)}`;
}

const typeName = (value: unknown): string =>
  value === null ? 'null' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;

function badImage(event: CompressedVideo, error: unknown): BadFrameError {
  const cause = error instanceof Error ? error.message : String(error);
  return new BadFrameError(
    'corrupt_image',
    `${describeAny(event)}: cannot decode ${event.payload.format}: ${cause}`,
  );
}
