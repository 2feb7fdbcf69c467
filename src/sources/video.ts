import { defer, Observable } from 'rxjs';
import { InvalidOptionError, SourceError } from '../core/errors.js';
import type { RawPixelFormat, SourceEvent } from '../core/events.js';
import { type Micros, wallClockMicros } from '../core/time.js';
import { REALTIME_FILE_PREROLL, releaseAtCaptureTime } from './capture-pacing.js';
import { runProcess } from './child-process.js';
import { FixedSizeChunker } from './fixed-size-chunker.js';
import { checkOrigin } from './origin.js';

export const CAMERA_INPUT_FORMATS = ['v4l2', 'avfoundation', 'dshow'] as const;
export type CameraInputFormat = (typeof CAMERA_INPUT_FORMATS)[number];

export interface CameraInput {
  readonly kind: 'camera';
  /** v4l2: a device node (default /dev/video0); avfoundation: an index or name (default "0"); dshow: a name. */
  readonly device?: string;
  /** Capture API; default from the platform: v4l2 on Linux, avfoundation on macOS, dshow on Windows. */
  readonly inputFormat?: CameraInputFormat;
  /** Capture size requested from the camera (`-video_size`); frames are then scaled to the output size. */
  readonly captureWidth?: number;
  readonly captureHeight?: number;
  /** Frame rate requested from the camera (`-framerate`). */
  readonly fps?: number;
}

export interface FileInput {
  readonly kind: 'file';
  readonly path: string;
  /** `realtime` reads at the file's own rate (ffmpeg -re), like a camera; `fast` (default) as fast as possible. */
  readonly pace?: 'realtime' | 'fast';
  /** Resample to this constant frame rate (ffmpeg's fps filter); default: the file's own frames. */
  readonly fps?: number;
}

export interface VideoSourceOptions {
  readonly streamId: string;
  readonly input: CameraInput | FileInput;
  /** Output frame size (default 64×48) and pixel format (default gray). */
  readonly width?: number;
  readonly height?: number;
  readonly pixelFormat?: RawPixelFormat;
  /**
   * Time of the first frame. Default: the wall clock when it arrives for a camera; for a real-time file, the wall
   * clock {@link REALTIME_FILE_PREROLL} after the subscription, each frame then handed over at its time as a camera
   * would; 0 for a fast file. Later frames are placed by their presentation time relative to the first one. Whole
   * non-negative µs.
   */
  readonly origin?: Micros;
  /** Fail when ffmpeg delivers nothing for this long, in ms (default 10000; 0 never). */
  readonly noDataTimeoutMs?: number;
  readonly killGraceMs?: number;
  /** ffmpeg program (default `ffmpeg` on PATH; 5.1 or newer). */
  readonly ffmpeg?: string;
  readonly clock?: () => Micros;
}

const defaultCameraFormat = (): CameraInputFormat =>
  process.platform === 'darwin' ? 'avfoundation' : process.platform === 'win32' ? 'dshow' : 'v4l2';

function checkPositiveInteger(option: string, value: number | undefined, max: number): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < 1 || value > max)
    throw new InvalidOptionError(option, `must be an integer in 1..${max}, got ${value}`);
}

function checkFps(option: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value <= 0 || value > 1000)
    throw new InvalidOptionError(option, `must be a frame rate in (0, 1000], got ${value}`);
}

function cameraInputArgs(input: CameraInput): string[] {
  const format = input.inputFormat ?? defaultCameraFormat();
  if (!CAMERA_INPUT_FORMATS.includes(format))
    throw new InvalidOptionError(
      'input.inputFormat',
      `must be one of ${CAMERA_INPUT_FORMATS.join('|')}, got ${format}`,
    );
  const args = ['-f', format];
  if (input.fps !== undefined) args.push('-framerate', String(input.fps));
  if ((input.captureWidth === undefined) !== (input.captureHeight === undefined))
    throw new InvalidOptionError('input.captureWidth', 'captureWidth and captureHeight go together');
  if (input.captureWidth !== undefined)
    args.push('-video_size', `${input.captureWidth}x${input.captureHeight}`);
  switch (format) {
    case 'v4l2':
      return [...args, '-i', input.device ?? '/dev/video0'];
    case 'avfoundation': {
      // "<video>:<audio>": the camera only, no microphone.
      const device = input.device ?? '0';
      return [...args, '-i', device.includes(':') ? device : `${device}:none`];
    }
    case 'dshow': {
      if (input.device === undefined)
        throw new InvalidOptionError(
          'input.device',
          'dshow needs a camera name (ffmpeg -list_devices true -f dshow -i dummy)',
        );
      return [...args, '-i', input.device.startsWith('video=') ? input.device : `video=${input.device}`];
    }
  }
}

/**
 * ffmpeg's command line for a video source. Frames leave as raw gray/rgb24 bytes on stdout; `showinfo` at the end
 * of the filter chain logs each frame's presentation time on stderr in µs (settb=AVTB), which stamps the frame.
 * `-fps_mode passthrough` stops ffmpeg from duplicating or dropping frames after the filters, so the n-th frame on
 * stdout is the n-th showinfo line.
 */
export function ffmpegVideoArgs(options: VideoSourceOptions): string[] {
  const width = options.width ?? 64;
  const height = options.height ?? 48;
  const pixelFormat = options.pixelFormat ?? 'gray';
  checkPositiveInteger('width', width, 4096);
  checkPositiveInteger('height', height, 4096);
  if (pixelFormat !== 'gray' && pixelFormat !== 'rgb')
    throw new InvalidOptionError('pixelFormat', `must be gray or rgb, got ${String(pixelFormat)}`);
  const input = options.input;
  const filters: string[] = [];
  let inputArgs: string[];
  if (input.kind === 'camera') {
    checkFps('input.fps', input.fps);
    checkPositiveInteger('input.captureWidth', input.captureWidth, 8192);
    checkPositiveInteger('input.captureHeight', input.captureHeight, 8192);
    inputArgs = cameraInputArgs(input);
  } else if (input.kind === 'file') {
    if (typeof input.path !== 'string' || input.path === '')
      throw new InvalidOptionError('input.path', 'must be the path of a video file');
    const pace = input.pace ?? 'fast';
    if (pace !== 'fast' && pace !== 'realtime')
      throw new InvalidOptionError('input.pace', `must be realtime or fast, got ${String(pace)}`);
    checkFps('input.fps', input.fps);
    if (input.fps !== undefined) filters.push(`fps=${input.fps}`);
    // In real time ffmpeg writes nothing while it waits out a still frame (a screen recording, variable frame rate):
    // its progress report, every second, tells the no-data watchdog it is alive.
    inputArgs = [
      ...(pace === 'realtime' ? ['-stats_period', '1', '-progress', 'pipe:2', '-re'] : []),
      '-i',
      input.path,
    ];
  } else {
    throw new InvalidOptionError(
      'input.kind',
      `must be camera or file, got ${String((input as { kind: unknown }).kind)}`,
    );
  }
  const ffmpegFormat = pixelFormat === 'gray' ? 'gray' : 'rgb24';
  filters.push(`scale=${width}:${height}:flags=area`, `format=${ffmpegFormat}`, 'settb=AVTB', 'showinfo');
  return [
    '-hide_banner',
    '-nostdin',
    '-nostats',
    '-loglevel',
    'info',
    ...inputArgs,
    '-an',
    '-sn',
    '-dn',
    '-vf',
    filters.join(','),
    '-fps_mode',
    'passthrough',
    '-f',
    'rawvideo',
    '-pix_fmt',
    ffmpegFormat,
    'pipe:1',
  ];
}

/** A showinfo frame line: `[Parsed_showinfo_3 @ 0x...] n:   0 pts:      0 pts_time:0 ...`; both fields checked after. */
const SHOWINFO = /Parsed_showinfo.*\bn:\s*(\S+)\s+pts:\s*(\S+)/;
const isShowinfo = (line: string): boolean => line.includes('Parsed_showinfo');
/** A line of ffmpeg's `-progress` report: `key=value` (`frame=9`, `speed=   0x`, `progress=continue`). */
const isProgressLine = (line: string): boolean => /^[a-z][a-z0-9_]*=/.test(line);

/**
 * Frames waiting for their showinfo line, or lines waiting for their frame, before the source gives up: the two come
 * on separate pipes but a few frames apart at most, so a longer wait means the pairing is broken (and memory would
 * grow without bound).
 */
export const MAX_UNPAIRED_FRAMES = 64;

/** The pts of the `expected`-th showinfo frame line, or a SourceError saying what is wrong with the line. */
export function parseShowinfo(match: RegExpExecArray, expected: number): number | SourceError {
  const [, n, pts] = match as unknown as [string, string, string];
  if (!/^\d+$/.test(n) || Number(n) !== expected)
    return new SourceError(
      `ffmpeg showinfo numbered a frame n:${n} where frame ${expected} was expected: frames and timestamps no longer pair up`,
    );
  const value = Number(pts);
  if (!/^-?\d+$/.test(pts) || !Number.isSafeInteger(value))
    return new SourceError(
      `ffmpeg showinfo gave frame ${expected} the timestamp "${pts}", not a whole number of µs`,
    );
  return value;
}

/**
 * Video from a camera or any file ffmpeg reads, through one ffmpeg child process: raw gray/rgb frames of the
 * requested small size, stamped with their capture/presentation time (see {@link VideoSourceOptions.origin}), so a
 * fast file gives the same stamps on every run. The n-th frame takes the pts of showinfo's line `n: <n>`; a line
 * numbered otherwise, a pts that is not a whole number, or more than {@link MAX_UNPAIRED_FRAMES} frames (or lines)
 * waiting for their partner ends the stream with a SourceError rather than mis-stamping frames. Errors (no ffmpeg, no camera, device busy, unreadable file, ffmpeg
 * dying or going silent) end the stream with a SourceError carrying ffmpeg's own message. Unsubscribing stops and
 * reaps ffmpeg.
 */
export function videoSource(options: VideoSourceOptions): Observable<SourceEvent<'video'>> {
  const args = ffmpegVideoArgs(options);
  checkOrigin(options.origin);
  const width = options.width ?? 64;
  const height = options.height ?? 48;
  const format = options.pixelFormat ?? 'gray';
  const paced = options.input.kind === 'file' && options.input.pace === 'realtime';
  const clock = options.clock ?? wallClockMicros;
  const frameBytes = width * height * (format === 'rgb' ? 3 : 1);
  // A file played as a camera hands each frame over at its capture time (src/sources/capture-pacing.ts), counted
  // from a start just after the subscription; a camera's first frame is stamped when it arrives.
  if (paced)
    return defer(() => {
      const start = clock() + REALTIME_FILE_PREROLL;
      const origin = options.origin ?? start;
      return stampedFrames(origin).pipe(releaseAtCaptureTime({ origin, start, clock }));
    });
  return stampedFrames(options.origin ?? (options.input.kind === 'camera' ? undefined : 0));

  function stampedFrames(firstOrigin: Micros | undefined): Observable<SourceEvent<'video'>> {
    return new Observable<SourceEvent<'video'>>((subscriber) => {
      const chunker = new FixedSizeChunker(frameBytes);
      const frames: Uint8Array[] = [];
      const stamps: number[] = [];
      let stampsSeen = 0;
      let origin: Micros | undefined = firstOrigin;
      let firstPts = 0;
      let seq = 0;
      const emitReady = (): void => {
        while (frames.length > 0 && stamps.length > 0) {
          const data = frames.shift() as Uint8Array;
          const pts = stamps.shift() as number;
          if (origin === undefined) origin = clock();
          if (seq === 0) firstPts = pts;
          subscriber.next({
            streamId: options.streamId,
            modality: 'video',
            time: origin + (pts - firstPts),
            seq: seq++,
            payload: { format, width, height, data },
          });
        }
      };
      return runProcess({
        command: options.ffmpeg ?? 'ffmpeg',
        args,
        name: 'ffmpeg',
        noDataTimeoutMs: options.noDataTimeoutMs ?? 10_000,
        ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
        keepForErrors: (line) => !isShowinfo(line) && !/^\s/.test(line) && !isProgressLine(line),
        ...(paced && { isProgress: isProgressLine }),
      }).subscribe({
        next(output) {
          if (output.kind === 'stdout') frames.push(...chunker.push(output.data));
          else {
            const match = SHOWINFO.exec(output.line);
            if (match) {
              const pts = parseShowinfo(match, stampsSeen++);
              if (pts instanceof SourceError) return subscriber.error(pts);
              stamps.push(pts);
            }
          }
          emitReady();
          if (frames.length > MAX_UNPAIRED_FRAMES || stamps.length > MAX_UNPAIRED_FRAMES)
            subscriber.error(
              new SourceError(
                `ffmpeg sent ${frames.length > 0 ? `${frames.length} frames without a showinfo timestamp` : `${stamps.length} showinfo timestamps without a frame`} (at most ${MAX_UNPAIRED_FRAMES} may wait): frames and timestamps no longer pair up`,
              ),
            );
        },
        error: (error: unknown) => subscriber.error(error),
        complete() {
          if (frames.length > 0 || chunker.partialBytes > 0)
            subscriber.error(
              new SourceError(
                `ffmpeg output ended with ${frames.length} frame(s) without a timestamp and ${chunker.partialBytes} stray byte(s)`,
              ),
            );
          else subscriber.complete();
        },
      });
    });
  }
}
