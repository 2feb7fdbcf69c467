/** 20 ms at 16 kHz: the frame over which loudness is measured. */
const FRAME = 320;
/** Frames more than this far below the loudest frame are pauses, left out of the level. */
const ACTIVE_RANGE_DB = 30;

/**
 * The RMS level (linear, full scale 1) of a clip's active part: over its 20 ms frames within 30 dB of its loudest
 * frame. A beep pattern or a phrase with pauses is measured by what is heard, so distractors and prompts placed at
 * the same level sound about as loud. 0 for silence.
 */
export function activeLevel(samples: Int16Array): number {
  const powers: number[] = [];
  for (let i = 0; i < samples.length; i += FRAME) {
    const end = Math.min(samples.length, i + FRAME);
    let sum = 0;
    for (let k = i; k < end; k++) sum += ((samples[k] as number) / 32768) ** 2;
    powers.push(sum / (end - i));
  }
  const loudest = Math.max(0, ...powers);
  if (loudest === 0) return 0;
  const floor = loudest * 10 ** (-ACTIVE_RANGE_DB / 10);
  const active = powers.filter((p) => p >= floor);
  return Math.sqrt(active.reduce((a, b) => a + b, 0) / active.length);
}
