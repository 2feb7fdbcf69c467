import { spawn } from 'node:child_process';
import { Observable } from 'rxjs';
import { InvalidOptionError, SourceError } from '../core/errors.js';
import type { SourceEvent } from '../core/events.js';
import { type Micros, wallClockMicros } from '../core/time.js';
import {
  exitMessage,
  LineSplitter,
  onPath,
  spawnFailure,
  tailSuffix,
  terminate,
  Watchdog,
} from './child-process.js';
import { frameSamplesFor, PcmFramer, strayByteError } from './pcm-framer.js';
import { MICROPHONE_RECORDERS, type MicrophoneRecorder, recorderCommand } from './recorder-command.js';

export { MICROPHONE_RECORDERS, type MicrophoneRecorder } from './recorder-command.js';

/** Microphone audio is always captured as 16 kHz mono PCM16, the rate the audio features need. */
export const MICROPHONE_SAMPLE_RATE = 16_000;

export interface MicrophoneOptions {
  readonly streamId: string;
  /** Recorder program (default `sox`; `arecord` for ALSA only, `rec` is sox's alias). */
  readonly recorder?: MicrophoneRecorder;
  /** Capture device: `arecord -D <device>` (e.g. `hw:1,0`, `plughw:1`), or AUDIODEV for sox (default device). */
  readonly device?: string;
  /** Event length, 10..20 ms (default 20). */
  readonly frameMs?: number;
  /** Samples of the frame starting at each capture time, e.g. to end frames on window ends (PcmFramerOptions). */
  readonly frameSamplesAt?: (time: Micros) => number;
  /** Fail when the recorder delivers nothing for this long, in ms (default 5000; 0 never). */
  readonly noDataTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL on unsubscribe, in ms (default 2000). */
  readonly killGraceMs?: number;
  /** Wall clock used once, to place the first sample (default: the system clock). */
  readonly clock?: () => Micros;
}

/** A failing pipe from the recorder: a SourceError, which ends the stream rather than vanishing. */
export function audioStreamFailure(recorder: string, error: unknown): SourceError {
  const why = error instanceof Error ? error.message : String(error);
  return new SourceError(`${recorder} audio stream failed: ${why}`, { cause: error });
}

/**
 * Live microphone audio from a sox/rec/arecord child process: 16 kHz mono PCM16 events of `frameMs`, stamped by
 * sample count from the stream's start, each handed over as soon as the device has captured it (the recorder reads
 * and writes one frame at a time: src/sources/recorder-command.ts). A missing recorder program, a device that cannot be
 * opened or is busy, a recorder that dies or goes silent: each ends the stream with a SourceError naming the cause
 * and the recorder's own last error lines. Unsubscribing stops and reaps the recorder.
 */
export function microphoneSource(options: MicrophoneOptions): Observable<SourceEvent<'audio'>> {
  const recorder = options.recorder ?? 'sox';
  if (!MICROPHONE_RECORDERS.includes(recorder))
    throw new InvalidOptionError(
      'recorder',
      `must be one of ${MICROPHONE_RECORDERS.join('|')}, got ${String(recorder)}`,
    );
  if (options.device !== undefined && recorder === 'rec')
    throw new InvalidOptionError(
      'device',
      'recorder "rec" cannot select a device; use "sox" (AUDIODEV) or "arecord"',
    );
  const frameSamples = frameSamplesFor(options.frameMs ?? 20, MICROPHONE_SAMPLE_RATE);
  const noDataTimeoutMs = options.noDataTimeoutMs ?? 5_000;

  return new Observable<SourceEvent<'audio'>>((subscriber) => {
    const command = recorderCommand(recorder, {
      sampleRate: MICROPHONE_SAMPLE_RATE,
      channels: 1,
      frameSamples,
      ...(options.device !== undefined && { device: options.device }),
      stdbuf: recorder !== 'arecord' && onPath('stdbuf'),
    });
    const child = spawn(command.command, [...command.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...command.env },
    });
    const audio = child.stdout;
    const stderr = new LineSplitter();
    const framer = new PcmFramer({
      streamId: options.streamId,
      sampleRate: MICROPHONE_SAMPLE_RATE,
      frameSamples,
      clock: options.clock ?? wallClockMicros,
      ...(options.frameSamplesAt && { frameSamplesAt: options.frameSamplesAt }),
    });
    const watchdog = new Watchdog(noDataTimeoutMs, () => {
      const device = options.device ?? 'default device';
      subscriber.error(
        new SourceError(
          `${recorder} delivered no audio from ${device} for ${noDataTimeoutMs} ms (device busy or not capturing?)${tailSuffix(stderr)}`,
        ),
      );
      terminate(child, options.killGraceMs);
    });

    child.on('error', (error) => subscriber.error(spawnFailure(recorder, error)));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    audio.on('data', (chunk: Buffer) => {
      watchdog.kick();
      framer.pushTo(chunk, subscriber);
    });
    audio.on('error', (error: unknown) => subscriber.error(audioStreamFailure(recorder, error)));
    child.on('close', (code, signal) => {
      watchdog.stop();
      stderr.end();
      if (code !== 0) {
        // stdbuf's own failure to find the recorder: as if it had been started directly.
        if (command.wrapped && code === 127 && /failed to run command/.test(stderr.tail()))
          subscriber.error(
            new SourceError(`${recorder} not found: is it installed and on PATH? (${stderr.tail()})`),
          );
        else subscriber.error(new SourceError(exitMessage(recorder, code, signal, stderr.tail())));
        return;
      }
      for (const event of framer.flush()) subscriber.next(event);
      if (framer.strayBytes > 0) subscriber.error(strayByteError(recorder, framer.strayBytes));
      else subscriber.complete();
    });

    return () => {
      watchdog.stop();
      terminate(child, options.killGraceMs);
      audio.destroy();
      child.stderr?.destroy();
    };
  });
}
