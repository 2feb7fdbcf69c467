// The command line of a microphone recorder that hands over each frame as soon as the device has captured it. Left to
// their defaults the recorders deliver audio in lumps far longer than a frame, and every window then waits for the
// lump holding its end: arecord reads ALSA periods of 125 ms; sox reads 8 KiB buffers (256 ms of 16 kHz mono) and
// writes them through stdio's 4 KiB buffer (128 ms) however small its own. So arecord is asked for periods of one
// frame, and sox for buffers of one frame with stdout unbuffered (coreutils' stdbuf, where it is installed).

export const MICROPHONE_RECORDERS = ['sox', 'rec', 'arecord'] as const;
export type MicrophoneRecorder = (typeof MICROPHONE_RECORDERS)[number];

export interface RecorderRequest {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
  /** Samples (per channel) of one frame: the recorder's read and write size. */
  readonly frameSamples: number;
  /** arecord: `-D device`; sox: the AUDIODEV environment variable (`rec` takes none). */
  readonly device?: string;
  /** Run sox/rec under `stdbuf -o0` (stdbuf is on PATH): without it sox writes 4 KiB at a time. */
  readonly stdbuf: boolean;
}

export interface RecorderCommand {
  readonly command: string;
  readonly args: readonly string[];
  /** Variables to set on top of the environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The command runs the recorder under stdbuf, which exits 127 when it cannot find the recorder. */
  readonly wrapped: boolean;
}

/** ALSA's buffer: room for a stall of the recorder itself (its pipe to us holds seconds more); latency is the period. */
const ARECORD_BUFFER_US = 500_000;

/** Headerless little-endian PCM16 on stdout, one frame per read and write. */
export function recorderCommand(recorder: MicrophoneRecorder, request: RecorderRequest): RecorderCommand {
  const { sampleRate, channels, frameSamples, device } = request;
  const rate = String(sampleRate);
  if (recorder === 'arecord') {
    const periodUs = Math.round((frameSamples * 1e6) / sampleRate);
    return {
      command: 'arecord',
      args: [
        ...(device === undefined ? [] : ['-D', device]),
        '-q',
        '-r',
        rate,
        '-c',
        String(channels),
        '-t',
        'raw',
        '-f',
        'S16_LE',
        `--period-time=${periodUs}`,
        `--buffer-time=${Math.max(ARECORD_BUFFER_US, 4 * periodUs)}`,
        '-',
      ],
      env: {},
      wrapped: false,
    };
  }
  const sox = [
    '--buffer',
    String(frameSamples * channels * 2),
    ...(recorder === 'sox' ? ['--default-device'] : []),
    '--no-show-progress',
    '--rate',
    rate,
    '--channels',
    String(channels),
    '--encoding',
    'signed-integer',
    '--bits',
    '16',
    '--endian',
    'little',
    '--type',
    'raw',
    '-',
  ];
  const env: Record<string, string> = recorder === 'sox' && device !== undefined ? { AUDIODEV: device } : {};
  return request.stdbuf
    ? { command: 'stdbuf', args: ['-o0', recorder, ...sox], env, wrapped: true }
    : { command: recorder, args: sox, env, wrapped: false };
}
