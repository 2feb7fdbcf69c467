import { defer, Observable } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import type { SourceEvent } from '../core/events.js';
import { type Micros, wallClockMicros } from '../core/time.js';
import { REALTIME_FILE_PREROLL, releaseAtCaptureTime } from './capture-pacing.js';
import { runProcess } from './child-process.js';
import { checkOrigin } from './origin.js';
import { frameSamplesFor, PcmFramer, strayByteError } from './pcm-framer.js';

/** Audio sources deliver 16 kHz mono PCM16, the only rate the audio features take. */
export const AUDIO_SOURCE_SAMPLE_RATE = 16_000;

export interface AudioFileOptions {
  readonly streamId: string;
  /** Any file ffmpeg reads (wav, flac, mp3, ogg, the audio of a video...). */
  readonly path: string;
  /** `fast` (default) decodes as fast as possible; `realtime` at the file's own rate (ffmpeg -re), like a microphone. */
  readonly pace?: 'realtime' | 'fast';
  /** Event length, 10..20 ms (default 20). */
  readonly frameMs?: number;
  /** Samples of the frame starting at each capture time, e.g. to end frames on window ends (PcmFramerOptions). */
  readonly frameSamplesAt?: (time: Micros) => number;
  /**
   * Time of the first sample, whole non-negative µs. Default: 0 for a fast file; for a real-time one, the wall clock
   * {@link REALTIME_FILE_PREROLL} after the subscription, each frame then handed over once its last sample is due, as
   * a microphone would.
   */
  readonly origin?: Micros;
  /** Fail when ffmpeg delivers nothing for this long, in ms (default 10000; 0 never). */
  readonly noDataTimeoutMs?: number;
  readonly killGraceMs?: number;
  readonly ffmpeg?: string;
  readonly clock?: () => Micros;
}

/** ffmpeg's command line: decode the first audio stream, mix to mono and resample to 16 kHz with ffmpeg's resampler. */
export function ffmpegAudioArgs(options: AudioFileOptions): string[] {
  if (typeof options.path !== 'string' || options.path === '')
    throw new InvalidOptionError('path', 'must be the path of an audio file');
  const pace = options.pace ?? 'fast';
  if (pace !== 'fast' && pace !== 'realtime')
    throw new InvalidOptionError('pace', `must be realtime or fast, got ${String(pace)}`);
  return [
    '-hide_banner',
    '-nostdin',
    '-nostats',
    '-loglevel',
    'error',
    ...(pace === 'realtime' ? ['-re'] : []),
    '-i',
    options.path,
    '-map',
    '0:a:0',
    '-ac',
    '1',
    '-ar',
    String(AUDIO_SOURCE_SAMPLE_RATE),
    '-f',
    's16le',
    '-acodec',
    'pcm_s16le',
    'pipe:1',
  ];
}

/**
 * Audio from any file ffmpeg reads, resampled by ffmpeg to 16 kHz mono PCM16 events of `frameMs`, stamped by
 * sample count (the last event may be shorter). Unreadable files or files without audio end the stream with a
 * SourceError carrying ffmpeg's message; so does output that stops inside a sample (after the whole samples). Unsubscribing stops and reaps ffmpeg.
 */
export function audioFileSource(options: AudioFileOptions): Observable<SourceEvent<'audio'>> {
  const args = ffmpegAudioArgs(options);
  checkOrigin(options.origin);
  const frameSamples = frameSamplesFor(options.frameMs ?? 20, AUDIO_SOURCE_SAMPLE_RATE);
  const clock = options.clock ?? wallClockMicros;
  // A file played as a microphone hands each frame over once its last sample is due (src/sources/capture-pacing.ts):
  // ffmpeg -re alone delivers a demuxer packet at a time.
  if (options.pace === 'realtime')
    return defer(() => {
      const start = clock() + REALTIME_FILE_PREROLL;
      const origin = options.origin ?? start;
      return framedAudio(args, frameSamples, origin, options).pipe(
        releaseAtCaptureTime({ origin, start, clock }),
      );
    });
  return framedAudio(args, frameSamples, options.origin ?? 0, options);
}

function framedAudio(
  args: string[],
  frameSamples: number,
  origin: Micros,
  options: AudioFileOptions,
): Observable<SourceEvent<'audio'>> {
  return new Observable<SourceEvent<'audio'>>((subscriber) => {
    const framer = new PcmFramer({
      streamId: options.streamId,
      sampleRate: AUDIO_SOURCE_SAMPLE_RATE,
      frameSamples,
      clock: options.clock ?? wallClockMicros,
      origin,
      ...(options.frameSamplesAt && { frameSamplesAt: options.frameSamplesAt }),
    });
    return runProcess({
      command: options.ffmpeg ?? 'ffmpeg',
      args,
      name: 'ffmpeg',
      noDataTimeoutMs: options.noDataTimeoutMs ?? 10_000,
      ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
    }).subscribe({
      next(output) {
        if (output.kind === 'stdout') framer.pushTo(output.data, subscriber);
      },
      error: (error: unknown) => subscriber.error(error),
      complete() {
        for (const event of framer.flush()) subscriber.next(event);
        if (framer.strayBytes > 0) subscriber.error(strayByteError('ffmpeg', framer.strayBytes));
        else subscriber.complete();
      },
    });
  });
}
