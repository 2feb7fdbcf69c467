/**
 * Window-level descriptors of how a sound behaves over its frames, computed from the per-frame log-mel rows that
 * either audio kernel produces (the same bits from both), so they add no kernel code and stay identical between
 * training and serving. They are what tells speech from other loud sounds in the same band: speech's energy rises and
 * falls with its syllables (a modulation near 4 Hz, frames of low energy between them) and its spectrum keeps
 * changing (flux) and alternates voiced and unvoiced sounds (the zero-crossing rate swings): its spectral shape 50 or
 * 200 ms later is another one, while music, tones and machines hold a note or a hum that long (stationarity) in steady
 * or peaky spectra (Scheirer & Slaney, 1997, used the same cues). A voice is periodic in its voiced sounds only, a few
 * times a second, with a pitch that glides (harmonicity); an instrument's note is periodic throughout and holds its
 * pitch.
 */
import { meanOf, varianceAbout } from './moments.js';

export const AUDIO_DESCRIPTORS = [
  'flux',
  'flatness',
  'centroid',
  'envelope',
  'zcr',
  'stationarity',
  'harmonicity',
  'segments',
] as const;
export type AudioDescriptor = (typeof AUDIO_DESCRIPTORS)[number];

/**
 * The segments descriptor cuts the window's frames into this many consecutive parts (125 ms each in a 500 ms window):
 * a window's target is what plays at its end, and its mean and max cannot say whether a sound starts or stops in it.
 */
const SEGMENTS = 4;

/** Values each descriptor writes, in the order written. */
export const AUDIO_DESCRIPTOR_VALUES: Readonly<Record<AudioDescriptor, readonly string[]>> = {
  flux: ['flux mean', 'flux std'],
  flatness: ['flatness mean', 'flatness std'],
  centroid: ['centroid mean', 'centroid std'],
  envelope: ['envelope std', 'low-energy share', 'modulation 2–8 Hz share'],
  zcr: ['zero-crossing rate mean', 'zero-crossing rate std'],
  stationarity: ['spectral shape correlation at 50 ms', 'spectral shape correlation at 200 ms'],
  harmonicity: ['harmonicity mean', 'harmonicity std', 'voiced share', 'voicing changes', 'pitch glide'],
  segments: Array.from({ length: SEGMENTS }, (_, k) => [
    `segment ${k + 1} log energy`,
    `segment ${k + 1} flatness`,
    `segment ${k + 1} centroid`,
  ]).flat(),
};

/**
 * Harmonicity is measured on the window's signal decimated by this factor (means of 8 samples: 2 kHz at 16 kHz),
 * which keeps a voice's fundamental and its first harmonics, and where the pitch range's autocorrelation takes a
 * sixty-fourth of the products it would at the full rate: the descriptor costs about what the log-mel kernel does.
 */
const HARMONICITY_DECIMATION = 8;
/** Fundamentals searched, Hz: most voices, men's to children's. */
const PITCH_LOW_HZ = 80;
const PITCH_HIGH_HZ = 500;
/** A frame is voiced at this normalised autocorrelation peak or above. */
const VOICED_AT = 0.7;

/** Lags of the stationarity descriptor in frames: 5 and 20 hops (50 and 200 ms at a 10 ms hop). */
const STATIONARITY_LAGS = [5, 20] as const;

/** Syllable-rate band of the envelope's modulation spectrum, Hz. */
const MODULATION_LOW_HZ = 2;
const MODULATION_HIGH_HZ = 8;
/** A frame is "low energy" below this share of the window's mean frame energy (Scheirer & Slaney: half the RMS). */
const LOW_ENERGY_SHARE = 0.25;

/** A window's frames as the analyser left them: row f holds bands 0..bands−1 (ln mel power) and the RMS. */
export interface FrameRows {
  readonly rows: Float64Array;
  /** Distance between rows' starts, in values (≥ bands + 1). */
  readonly stride: number;
  readonly frames: number;
  readonly bands: number;
}

/** The window's samples the frames were cut from: frame f is pcm[f·hop, f·hop + frameLength), zero-padded. */
export interface FramedPcm {
  readonly pcm: Int16Array;
  readonly length: number;
  readonly frameLength: number;
  readonly hopLength: number;
}

export function audioDescriptorSize(descriptors: readonly AudioDescriptor[] | undefined): number {
  let size = 0;
  for (const d of descriptors ?? []) size += AUDIO_DESCRIPTOR_VALUES[d].length;
  return size;
}

/**
 * Writes the descriptors at `offset`, in the order listed, and returns the offset after them. `sampleRate` is the
 * samples' (the envelope is sampled at sampleRate / hopLength). Too few frames for a descriptor (one frame has no
 * flux, fewer than four no modulation spectrum) gives zeros.
 */
export function writeAudioDescriptors(
  frames: FrameRows,
  samples: FramedPcm,
  descriptors: readonly AudioDescriptor[],
  sampleRate: number,
  out: Float32Array,
  offset: number,
): number {
  const framesPerSecond = sampleRate / samples.hopLength;
  // Not every descriptor needs the per-frame spectra; those that do share one pass over the frames.
  let spectra: FrameSpectra | undefined;
  const perFrame = (): FrameSpectra => {
    spectra ??= frameSpectra(frames);
    return spectra;
  };
  let o = offset;
  for (const descriptor of descriptors) {
    switch (descriptor) {
      case 'flux': {
        const [mean, std] = meanStd(spectralFlux(frames));
        out[o++] = mean;
        out[o++] = std;
        break;
      }
      case 'flatness': {
        const [mean, std] = meanStd(perFrame().flatness);
        out[o++] = mean;
        out[o++] = std;
        break;
      }
      case 'centroid': {
        const [mean, std] = meanStd(perFrame().centroid);
        out[o++] = mean;
        out[o++] = std;
        break;
      }
      case 'envelope': {
        const envelope = perFrame().logEnergy;
        out[o++] = meanStd(envelope)[1];
        out[o++] = lowEnergyShare(envelope);
        out[o++] = modulationShare(envelope, framesPerSecond);
        break;
      }
      case 'stationarity':
        for (const lag of STATIONARITY_LAGS) out[o++] = shapeCorrelation(frames, lag);
        break;
      case 'zcr': {
        const [mean, std] = meanStd(zeroCrossingRates(samples, frames.frames));
        out[o++] = mean;
        out[o++] = std;
        break;
      }
      case 'harmonicity': {
        const { peaks, lags } = pitchTrack(samples, frames.frames, sampleRate);
        const [mean, std] = meanStd(peaks);
        out[o++] = mean;
        out[o++] = std;
        const voicing = voicingOf(peaks, lags);
        out[o++] = voicing.share;
        out[o++] = voicing.changes;
        out[o++] = voicing.glide;
        break;
      }
      case 'segments':
        o = writeSegments(perFrame(), out, o);
        break;
    }
  }
  return o;
}

/**
 * Per segment k of S, frames [⌊k·n/S⌋, max(⌊(k+1)·n/S⌋, ⌊k·n/S⌋ + 1)): the mean ln energy, flatness and centroid of its
 * frames. A window of fewer frames than segments shares frames between them (one frame: all four are that frame);
 * a window of none gives zeros.
 */
function writeSegments(perFrame: FrameSpectra, out: Float32Array, offset: number): number {
  const n = perFrame.logEnergy.length;
  const end = offset + AUDIO_DESCRIPTOR_VALUES.segments.length;
  if (n === 0) {
    out.fill(0, offset, end);
    return end;
  }
  const series = [perFrame.logEnergy, perFrame.flatness, perFrame.centroid];
  let o = offset;
  for (let k = 0; k < SEGMENTS; k++) {
    const from = Math.floor((k * n) / SEGMENTS);
    const to = Math.max(Math.floor(((k + 1) * n) / SEGMENTS), from + 1);
    for (const values of series) {
      let sum = 0;
      for (let f = from; f < to; f++) sum += values[f] as number;
      out[o++] = sum / (to - from);
    }
  }
  return o;
}

interface FrameSpectra {
  /** ln(mean power) − mean ln power, negated: ln of the geometric over the arithmetic mean (≤ 0; 0 for a flat one). */
  readonly flatness: Float64Array;
  /** Power-weighted mean band index over bands − 1: 0 (all in the lowest band) .. 1 (all in the highest). */
  readonly centroid: Float64Array;
  /** ln of the frame's total mel power. */
  readonly logEnergy: Float64Array;
}

function frameSpectra({ rows, stride, frames, bands }: FrameRows): FrameSpectra {
  const flatness = new Float64Array(frames);
  const centroid = new Float64Array(frames);
  const logEnergy = new Float64Array(frames);
  for (let f = 0; f < frames; f++) {
    const row = f * stride;
    let power = 0;
    let weighted = 0;
    let logSum = 0;
    for (let b = 0; b < bands; b++) {
      const l = rows[row + b] as number;
      const p = Math.exp(l);
      power += p;
      weighted += b * p;
      logSum += l;
    }
    flatness[f] = logSum / bands - Math.log(power / bands);
    centroid[f] = bands > 1 ? weighted / power / (bands - 1) : 0;
    logEnergy[f] = Math.log(power);
  }
  return { flatness, centroid, logEnergy };
}

/** Per consecutive frame pair: the mean over bands of the rise in ln power (half-wave rectified difference). */
function spectralFlux({ rows, stride, frames, bands }: FrameRows): Float64Array {
  const flux = new Float64Array(Math.max(0, frames - 1));
  for (let f = 1; f < frames; f++) {
    let rise = 0;
    for (let b = 0; b < bands; b++) {
      const d = (rows[f * stride + b] as number) - (rows[(f - 1) * stride + b] as number);
      if (d > 0) rise += d;
    }
    flux[f - 1] = rise / bands;
  }
  return flux;
}

/**
 * Per frame: the share of consecutive sample pairs whose signs differ (a sample ≥ 0 counts as positive), over the
 * frame's frameLength − 1 pairs; samples past the window's end are the zeros the analyser padded with.
 */
function zeroCrossingRates({ pcm, length, frameLength, hopLength }: FramedPcm, frames: number): Float64Array {
  const rates = new Float64Array(frames);
  if (frameLength < 2) return rates;
  for (let f = 0; f < frames; f++) {
    const start = f * hopLength;
    let crossings = 0;
    let previous = start < length ? (pcm[start] as number) : 0;
    for (let i = start + 1; i < start + frameLength; i++) {
      const x = i < length ? (pcm[i] as number) : 0;
      crossings += (x ^ previous) >>> 31; // sign bits differ: branch-free (signs of speech are random)
      previous = x;
    }
    rates[f] = crossings / (frameLength - 1);
  }
  return rates;
}

/**
 * Per frame: the highest normalised autocorrelation over the lags of 80–500 Hz (0..1: 1 for a periodic sound; speech
 * alternates voiced frames near 1 with unvoiced ones and pauses) and the lag it is at, on the window's signal
 * decimated once (means of HARMONICITY_DECIMATION samples, zeros past its end); frame f takes frameLength / q of
 * those from floor(f · hopLength / q). A frame with no energy, or too short for the lags, has peak 0 and lag 0.
 */
function pitchTrack(
  { pcm, length, frameLength, hopLength }: FramedPcm,
  frames: number,
  sampleRate: number,
): { peaks: Float64Array; lags: Float64Array } {
  const peaks = new Float64Array(frames);
  const lags = new Float64Array(frames);
  const q = HARMONICITY_DECIMATION;
  const n = Math.floor(frameLength / q);
  const rate = sampleRate / q;
  const minLag = Math.ceil(rate / PITCH_HIGH_HZ);
  const maxLag = Math.min(Math.floor(rate / PITCH_LOW_HZ), n - 2);
  if (frames === 0 || minLag > maxLag) return { peaks, lags };
  const x = decimate(pcm, length, q, Math.floor(((frames - 1) * hopLength) / q) + n);
  const squares = new Float64Array(n + 1);
  for (let f = 0; f < frames; f++) {
    const s = Math.floor((f * hopLength) / q);
    for (let j = 0; j < n; j++) {
      const v = x[s + j] as number;
      squares[j + 1] = (squares[j] as number) + v * v;
    }
    let best = 0;
    let bestLag = 0;
    for (let lag = minLag; lag <= maxLag; lag++) {
      let product = 0;
      for (let j = s, end = s + n - lag; j < end; j++) product += (x[j] as number) * (x[j + lag] as number);
      // Energies of the two overlapping parts, from the running sum of squares.
      const head = squares[n - lag] as number;
      const tail = (squares[n] as number) - (squares[lag] as number);
      const r = head > 0 && tail > 0 ? product / Math.sqrt(head * tail) : 0;
      if (r > best) {
        best = r;
        bestLag = lag;
      }
    }
    peaks[f] = best;
    lags[f] = bestLag;
  }
  return { peaks, lags };
}

/** Means of q consecutive samples, `count` of them; samples at or past `length` are zeros. */
function decimate(pcm: Int16Array, length: number, q: number, count: number): Float64Array {
  const x = new Float64Array(count);
  const whole = Math.min(count, Math.floor(length / q));
  for (let j = 0, i = 0; j < whole; j++) {
    let sum = 0;
    for (const end = i + q; i < end; i++) sum += pcm[i] as number;
    x[j] = sum / q;
  }
  for (let j = whole; j < count; j++) {
    let sum = 0;
    for (let i = j * q; i < j * q + q && i < length; i++) sum += pcm[i] as number;
    x[j] = sum / q;
  }
  return x;
}

/**
 * From a pitch track: the share of voiced frames; the share of consecutive frame pairs where voicing starts or stops
 * (syllables: speech switches several times a second, a held note or a hum hardly ever); and, over consecutive voiced
 * pairs, the mean pitch change in octaves, each capped at one (a voice glides, an instrument holds its note).
 */
function voicingOf(
  peaks: Float64Array,
  lags: Float64Array,
): { share: number; changes: number; glide: number } {
  const n = peaks.length;
  if (n === 0) return { share: 0, changes: 0, glide: 0 };
  let voiced = 0;
  let changes = 0;
  let glide = 0;
  let pairs = 0;
  for (let f = 0; f < n; f++) {
    const on = (peaks[f] as number) >= VOICED_AT;
    if (on) voiced++;
    if (f === 0) continue;
    const before = (peaks[f - 1] as number) >= VOICED_AT;
    if (on !== before) changes++;
    if (on && before) {
      glide += Math.min(Math.abs(Math.log2((lags[f] as number) / (lags[f - 1] as number))), 1);
      pairs++;
    }
  }
  return { share: voiced / n, changes: n > 1 ? changes / (n - 1) : 0, glide: pairs > 0 ? glide / pairs : 0 };
}

/**
 * The mean over frame pairs `lag` apart of the Pearson correlation of their log-mel rows across bands (the spectral
 * shape, whatever the loudness); 0 when the window has no such pair or a row is flat.
 */
function shapeCorrelation({ rows, stride, frames, bands }: FrameRows, lag: number): number {
  let sum = 0;
  let pairs = 0;
  for (let f = lag; f < frames; f++) {
    const a = (f - lag) * stride;
    const b = f * stride;
    let meanA = 0;
    let meanB = 0;
    for (let k = 0; k < bands; k++) {
      meanA += rows[a + k] as number;
      meanB += rows[b + k] as number;
    }
    meanA /= bands;
    meanB /= bands;
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let k = 0; k < bands; k++) {
      const x = (rows[a + k] as number) - meanA;
      const y = (rows[b + k] as number) - meanB;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    sum += aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
    pairs++;
  }
  return pairs > 0 ? sum / pairs : 0;
}

function meanStd(values: Float64Array): [number, number] {
  if (values.length === 0) return [0, 0];
  const m = meanOf(values);
  return [m, Math.sqrt(varianceAbout(values, m))];
}

// An indexed loop, as in moments.ts: for…of over a typed array allocates per element on this path.
function lowEnergyShare(logEnergy: Float64Array): number {
  const n = logEnergy.length;
  let mean = 0;
  for (let f = 0; f < n; f++) mean += Math.exp(logEnergy[f] as number);
  const threshold = Math.log((LOW_ENERGY_SHARE * mean) / n);
  let low = 0;
  for (let f = 0; f < n; f++) if ((logEnergy[f] as number) < threshold) low++;
  return low / n;
}

/** cos and sin of 2πj/n for j < n, per frame count (windows mostly have one or two): the DFT's trigonometry once. */
const dftTables = new Map<number, { cos: Float64Array; sin: Float64Array }>();
/** Frame counts whose tables are kept; a stream of odd-sized windows cannot grow the cache without bound. */
const MAX_DFT_TABLES = 64;

function dftTable(n: number): { cos: Float64Array; sin: Float64Array } {
  let table = dftTables.get(n);
  if (table === undefined) {
    const cos = new Float64Array(n);
    const sin = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      cos[j] = Math.cos((2 * Math.PI * j) / n);
      sin[j] = Math.sin((2 * Math.PI * j) / n);
    }
    table = { cos, sin };
    if (dftTables.size >= MAX_DFT_TABLES) dftTables.clear();
    dftTables.set(n, table);
  }
  return table;
}

/**
 * Share of the mean-removed log-energy envelope's power (DFT bins 1..n/2) that lies at 2–8 Hz. A window of 500 ms
 * has ~2 Hz bins, so this is coarse, but it is per window; the GRU integrates it over windows.
 */
function modulationShare(logEnergy: Float64Array, framesPerSecond: number): number {
  const n = logEnergy.length;
  if (n < 4) return 0;
  const mean = meanOf(logEnergy);
  const { cos, sin } = dftTable(n);
  let total = 0;
  let band = 0;
  for (let k = 1; k <= n >> 1; k++) {
    let re = 0;
    let im = 0;
    for (let f = 0; f < n; f++) {
      const x = (logEnergy[f] as number) - mean;
      re += x * (cos[(k * f) % n] as number);
      im -= x * (sin[(k * f) % n] as number);
    }
    const power = re * re + im * im;
    total += power;
    const hz = (k * framesPerSecond) / n;
    if (hz >= MODULATION_LOW_HZ && hz <= MODULATION_HIGH_HZ) band += power;
  }
  return total > 0 ? band / total : 0;
}
