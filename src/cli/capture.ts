import { type Command, InvalidArgumentError } from 'commander';
import { concat, finalize, fromEvent, map, merge, type Observable, of, take, takeUntil, tap } from 'rxjs';
import { frameSamplesToWindowEnd, type WindowGrid } from '../client/window-grid.js';
import { InvalidOptionError } from '../core/errors.js';
import type { Modality, StreamInput } from '../core/events.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { STREAM_ID_PATTERN } from '../server/protocol.js';
import { audioFileSource } from '../sources/audio-file.js';
import { captureFor, type TimedSource } from '../sources/capture-duration.js';
import { DropCounter } from '../sources/drop-counter.js';
import { MICROPHONE_SAMPLE_RATE, type MicrophoneRecorder, microphoneSource } from '../sources/microphone.js';
import { withProgressBounds } from '../sources/progress-bounds.js';
import { ndjsonTextSource } from '../sources/text.js';
import { type CameraInputFormat, videoSource } from '../sources/video.js';
import { positiveDurationOption } from './model-options.js';

/** Both audio sources' frames: 20 ms at 16 kHz, the sources' default (before a cut on a window end). */
const AUDIO_FRAME_SAMPLES = 320;

export interface CaptureOptions {
  streamId: string;
  mic?: string | boolean;
  recorder: string;
  camera?: string | boolean;
  cameraFormat?: string;
  size: string;
  fps: string;
  audioFile?: string;
  videoFile?: string;
  text?: string;
  duration?: number;
}

/** A stream id as a server takes it (1-128 of letters, digits, _ . : @ -). */
function streamIdOption(value: string): string {
  if (!STREAM_ID_PATTERN.test(value))
    throw new InvalidArgumentError(`a stream id is 1-128 letters, digits and _ . : @ -, got "${value}"`);
  return value;
}

/** Adds the live-capture options shared by `braid record` and `braid live`. */
export function withCaptureOptions(command: Command): Command {
  return command
    .option('--stream-id <id>', 'stream id of the captured session', streamIdOption, 'local')
    .option('--mic [device]', 'capture the microphone (sox, or arecord -D DEVICE), 16 kHz mono')
    .option('--recorder <program>', 'microphone recorder: sox | rec | arecord', 'sox')
    .option('--camera [device]', 'capture a camera with ffmpeg (v4l2 /dev/video0 on Linux)')
    .option('--camera-format <api>', "v4l2 | avfoundation | dshow (default: the platform's)")
    .option('--size <WxH>', 'video frames sent to the model, raw gray', '64x48')
    .option('--fps <n>', 'camera frame rate', '10')
    .option(
      '--audio-file <file>',
      'use an audio file (any format ffmpeg reads) as the microphone, in real time',
    )
    .option('--video-file <file>', 'use a video file as the camera, in real time')
    .option('--text <file>', 'text events as NDJSON lines {"text": ...} from a file, or - for stdin')
    .option(
      '--duration <duration>',
      'stop after this much capture time from the first event (e.g. 30s); Ctrl-C stops too',
      positiveDurationOption,
    );
}

/**
 * The captured session as one stream of inputs: an `open` naming its modalities, then every source merged. With the
 * stream's window grid (`braid live`: the pipeline's), audio frames end where its windows end, as the demo page cuts
 * them, so each window holds exactly its own samples and closes as the last of them is captured.
 */
export function captureInputs(
  options: CaptureOptions,
  log: Logger = silentLogger,
  grid?: WindowGrid,
): Observable<StreamInput> {
  const streamId = options.streamId;
  const frameSamplesAt =
    grid &&
    ((time: number) => frameSamplesToWindowEnd(grid, time, MICROPHONE_SAMPLE_RATE, AUDIO_FRAME_SAMPLES));
  const sources: TimedSource[] = [];
  const dense = (input$: Observable<StreamInput>) => sources.push({ input$, dense: true });
  const modalities: Modality[] = [];
  const [width, height] = options.size.split('x').map(Number);
  if (!Number.isInteger(width) || !Number.isInteger(height))
    throw new InvalidOptionError('size', `expected WxH, got ${options.size}`);
  const fps = Number(options.fps);
  if (options.mic !== undefined && options.audioFile !== undefined)
    throw new InvalidOptionError('audio-file', 'use either --mic or --audio-file');
  if (options.camera !== undefined && options.videoFile !== undefined)
    throw new InvalidOptionError('video-file', 'use either --camera or --video-file');
  if (options.mic !== undefined) {
    dense(
      microphoneSource({
        streamId,
        recorder: options.recorder as MicrophoneRecorder,
        device: typeof options.mic === 'string' ? options.mic : undefined,
        ...(frameSamplesAt && { frameSamplesAt }),
      }),
    );
    modalities.push('audio');
  } else if (options.audioFile !== undefined) {
    dense(
      audioFileSource({
        streamId,
        path: options.audioFile,
        pace: 'realtime',
        ...(frameSamplesAt && { frameSamplesAt }),
      }),
    );
    modalities.push('audio');
  }
  if (options.camera !== undefined) {
    dense(
      videoSource({
        streamId,
        width,
        height,
        input: {
          kind: 'camera',
          device: typeof options.camera === 'string' ? options.camera : undefined,
          inputFormat: options.cameraFormat as CameraInputFormat | undefined,
          fps,
        },
      }),
    );
    modalities.push('video');
  } else if (options.videoFile !== undefined) {
    dense(
      videoSource({
        streamId,
        width,
        height,
        input: { kind: 'file', path: options.videoFile, pace: 'realtime', fps },
      }),
    );
    modalities.push('video');
  }
  if (options.text !== undefined) {
    const drops = new DropCounter();
    const name = options.text === '-' ? 'stdin' : options.text;
    sources.push({
      input$: ndjsonTextSource({
        streamId,
        input: options.text === '-' ? process.stdin : options.text,
        drops,
      }).pipe(
        // Lines that are not events are skipped, as the source does; said here, with how many and why.
        finalize(() => {
          if (drops.total === 0) return;
          const counts = drops.snapshot();
          const example = Object.keys(counts)
            .map((reason) => drops.lastError(reason)?.message)
            .join('; ');
          log.warn(
            { event: 'text_lines_skipped', source: name, counts },
            `--text ${name}: skipped ${drops.total} line(s) that are not text events (${Object.entries(counts)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}): ${example}`,
          );
        }),
      ),
      dense: false,
    });
    modalities.push('text');
  }
  if (sources.length === 0)
    throw new InvalidOptionError(
      'mic',
      'nothing to capture: pass --mic, --camera, --audio-file, --video-file and/or --text',
    );
  // Stopping ends the sources (their child processes are reaped) and completes the stream, which flushes windows.
  // A duration is capture time from the first event (see captureFor); Ctrl-C stops at once, and so do the signals a
  // service manager, `timeout`, `docker stop` or a closed terminal send (unhandled, they ended the process with the
  // file unfinished). A second signal, no longer handled, ends the process.
  const stop$ = merge(
    ...(['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) =>
      fromEvent(process, signal).pipe(map(() => signal)),
    ),
  ).pipe(
    tap((signal) => log.info({ event: 'interrupted', signal }, `${signal}, stopping capture`)),
    take(1),
  );
  // The microphone and camera sources say how far they have captured, as the demo page does: a window closes once
  // both have covered its end, not a frame past the windowing's out-of-orderness allowance later.
  const captured$ = (
    options.duration !== undefined
      ? captureFor(sources, options.duration)
      : merge(...sources.map((s) => s.input$))
  ).pipe(withProgressBounds(modalities.filter((m) => m !== 'text')));
  return concat(of<StreamInput>({ control: 'open', streamId, modalities }), captured$).pipe(takeUntil(stop$));
}
