import path from 'node:path';
import { DEFAULT_WINDOWING, type WindowingConfig } from '../align/windowing.js';
import { BraidError } from '../core/errors.js';
import type { AnySourceEvent, Modality, SourceEvent } from '../core/events.js';
import { type Micros, seconds } from '../core/time.js';
import {
  DEFAULT_FEATURE_CONFIG,
  type FeatureConfig,
  featureLayout,
  parseFeatureConfig,
} from '../features/config.js';
import type { ModelConfig } from '../model/config.js';
import { jsonDifferences } from '../model/model-io.js';
import { readRecording } from '../record/recording-reader.js';
import { LabelTrack } from './labels.js';
import { type FeatureCounters, type FeaturedWindow, featurizeEvents } from './window-features.js';

export interface DatasetOptions {
  /** Features computed per window (default: the live default). Saved with the model. */
  readonly featureConfig?: FeatureConfig;
  /** Event-time windowing (default: the live default, 500 ms tumbling windows). */
  readonly windowing?: WindowingConfig;
  /** Labels to learn, in output order; default: every label found, in order of first appearance. */
  readonly labels?: readonly string[];
  /**
   * A gap longer than this between consecutive windows of a stream starts a new sequence, as the live runtime
   * resets a stream's state after such a gap (ModelRuntime's `gapReset`, default 5 s).
   */
  readonly gapReset?: Micros;
  /**
   * Refuse recordings, streams and labels without ground truth (default true, what training needs). False for
   * exporting windows: a window without a target gets NaN, and recordings with no labels at all give no label columns.
   */
  readonly requireLabels?: boolean;
  /**
   * Labels read beside the learnt ones, for evaluation only (e.g. `distractor`: a non-speech sound plays): never
   * required, NaN where a stream does not carry them or before their first event, never a target.
   */
  readonly auxLabels?: readonly string[];
}

export interface WindowRef {
  readonly index: number;
  readonly start: Micros;
  readonly end: Micros;
}

/** Consecutive windows of one stream of one recording: what the model sees from a fresh state. */
export interface Sequence {
  /** The recording (session) it comes from: cross-validation splits by this. */
  readonly session: string;
  readonly streamId: string;
  readonly windows: readonly WindowRef[];
  /** windows.length × inputWidth fused inputs, row-major. */
  readonly x: Float32Array;
  /** windows.length × labels targets, row-major; NaN where a label had no value yet (no loss, no metric). */
  readonly y: Float32Array;
  /** Per label, the capture times it turns on within the sequence (LabelTrack.onsets): events are scored by them. */
  readonly onsets?: Readonly<Record<string, readonly Micros[]>>;
  /** windows.length × auxLabels values at each window's end (as targets are taken), row-major; NaN where absent. */
  readonly aux?: Float32Array;
  /** windows.length loss weights in training (applyWindowWeights); absent: 1 each. Validation losses ignore them. */
  readonly weights?: Float32Array;
}

/** Column `index` of a sequence's `count` aux labels, one value a window; NaN throughout when it has none. */
export function auxColumn(sequence: Sequence, index: number, count: number): Float32Array {
  const out = new Float32Array(sequence.windows.length).fill(Number.NaN);
  const aux = sequence.aux;
  if (aux) for (let w = 0; w < out.length; w++) out[w] = aux[w * count + index] as number;
  return out;
}

/** What one recording gave and lost, for the training report. */
export interface SessionSummary {
  readonly path: string;
  readonly streams: readonly string[];
  readonly windows: number;
  readonly sequences: number;
  readonly counters: Omit<FeatureCounters, 'badFrameMessages'>;
  /** Windows with no target for some label (before that label's first event). */
  readonly unlabelledWindows: number;
  /**
   * Windows that held label events and nothing else, left out: a deployed stream sends no labels, so the model never
   * meets such a window live.
   */
  readonly labelOnlyWindows: number;
  /** Windows whose target is > 0.5, per label. */
  readonly positives: Readonly<Record<string, number>>;
}

export interface Dataset {
  readonly featureConfig: FeatureConfig;
  readonly windowing: WindowingConfig;
  readonly labels: readonly string[];
  readonly inputWidth: number;
  readonly sequences: readonly Sequence[];
  readonly sessions: readonly SessionSummary[];
  /** The aux labels asked for, in the column order of each sequence's `aux` (absent or empty when none were). */
  readonly auxLabels?: readonly string[];
}

const datasetError = (message: string): BraidError => new BraidError('BRAID_ERR_DATASET', message);

const FUSED: readonly Modality[] = ['audio', 'video', 'text'];

/** One recording featurized, before labels are chosen: windows and ground truth per stream. */
interface RawSession {
  readonly path: string;
  readonly windows: Map<string, FeaturedWindow[]>;
  readonly tracks: Map<string, LabelTrack>;
  readonly counters: FeatureCounters;
  readonly labelOnly: number;
}

/**
 * Reads one recording through the live feature path and checks that it can train: it has events, a label channel,
 * windows, and every modality it carries gave features under the config (a modality whose frames were all refused,
 * e.g. 8 kHz audio for a 16 kHz config, means the recording and the config do not match).
 */
async function readSession(
  file: string,
  featureConfig: FeatureConfig,
  windowing: WindowingConfig,
  requireLabels: boolean,
): Promise<RawSession> {
  const labelEvents = new Map<string, SourceEvent<'label'>[]>();
  const eventsByModality: Record<Modality, number> = { audio: 0, video: 0, text: 0, label: 0 };
  const onEvent = (event: AnySourceEvent): void => {
    eventsByModality[event.modality]++;
    if (event.modality !== 'label') return;
    let list = labelEvents.get(event.streamId);
    if (list === undefined) labelEvents.set(event.streamId, (list = []));
    list.push(event);
  };
  const { windows, counters } = await featurizeEvents(readRecording(file), featureConfig, windowing, onEvent);
  const total = Object.values(eventsByModality).reduce((a, b) => a + b, 0);
  if (total === 0) throw datasetError(`recording "${file}" is empty: it holds no events`);
  if (eventsByModality.label === 0 && requireLabels)
    throw datasetError(
      `recording "${file}" has no label channel (no 'label' events among its ${total} events): training needs ground truth, recorded as label events { labels: { name: 0|1 } }`,
    );
  const byStream = new Map<string, FeaturedWindow[]>();
  let labelOnly = 0;
  for (const w of windows) {
    if (!w.present.audio && !w.present.video && !w.present.text) {
      labelOnly++;
      continue;
    }
    let list = byStream.get(w.streamId);
    if (list === undefined) byStream.set(w.streamId, (list = []));
    list.push(w);
  }
  checkModalitiesUsable(file, windows, eventsByModality, counters, featureConfig);
  const tracks = new Map<string, LabelTrack>();
  for (const [streamId, events] of labelEvents) tracks.set(streamId, LabelTrack.fromEvents(streamId, events));
  let featured = 0;
  for (const [streamId, list] of byStream) {
    if (!tracks.has(streamId) && requireLabels)
      throw datasetError(
        `recording "${file}": stream "${streamId}" has ${list.length} windows but no label events; every stream needs ground truth (streams with labels: ${[...tracks.keys()].join(', ')})`,
      );
    featured += list.length;
  }
  if (featured === 0)
    throw datasetError(
      `recording "${file}" gave no windows with audio, video or text${eventsByModality.label > 0 ? `: it holds only ${eventsByModality.label} label events` : ''}`,
    );
  return { path: file, windows: byStream, tracks, counters, labelOnly };
}

function checkModalitiesUsable(
  file: string,
  windows: readonly FeaturedWindow[],
  eventsByModality: Readonly<Record<Modality, number>>,
  counters: FeatureCounters,
  featureConfig: FeatureConfig,
): void {
  const maskOffset = featureLayout(featureConfig).total - 3;
  FUSED.forEach((modality, m) => {
    if (eventsByModality[modality] === 0) return;
    if (windows.some((w) => w.x[maskOffset + m] === 1)) return;
    const reasons = Object.entries(counters.badFrameMessages)
      .map(([reason, message]) => `${reason}: ${message}`)
      .join('; ');
    throw datasetError(
      `recording "${file}": none of its ${eventsByModality[modality]} ${modality} events gave features under the feature config${reasons ? ` (${reasons})` : ''}; record at the config's format or train with a matching feature config`,
    );
  });
}

/** Label names of all sessions, in order of first appearance (sessions in the given order). */
function discoverLabels(sessions: readonly RawSession[]): string[] {
  const names: string[] = [];
  for (const session of sessions)
    for (const track of session.tracks.values())
      for (const name of track.names) if (!names.includes(name)) names.push(name);
  return names;
}

/** Cuts a stream's windows into sequences at gaps longer than gapReset and attaches each window's targets. */
function toSequences(
  session: RawSession,
  labels: readonly string[],
  inputWidth: number,
  gapReset: Micros,
  requireLabels: boolean,
  auxLabels: readonly string[],
): { sequences: Sequence[]; summary: SessionSummary } {
  const sequences: Sequence[] = [];
  const positives: Record<string, number> = Object.fromEntries(labels.map((l) => [l, 0]));
  let unlabelled = 0;
  let total = 0;
  for (const [streamId, windows] of session.windows) {
    const track = session.tracks.get(streamId);
    for (const label of labels)
      if (requireLabels && !track?.has(label))
        throw datasetError(
          `recording "${session.path}": stream "${streamId}" has no label "${label}" (it has: ${track?.names.join(', ') || 'none'})`,
        );
    let begin = 0;
    for (let i = 1; i <= windows.length; i++) {
      const gap =
        i < windows.length &&
        (windows[i] as FeaturedWindow).start - (windows[i - 1] as FeaturedWindow).end > gapReset;
      if (i < windows.length && !gap) continue;
      const part = windows.slice(begin, i);
      begin = i;
      const x = new Float32Array(part.length * inputWidth);
      const y = new Float32Array(part.length * labels.length);
      const aux = new Float32Array(part.length * auxLabels.length);
      part.forEach((w, t) => {
        if (w.x.length !== inputWidth)
          throw datasetError(
            `window ${w.index} of "${streamId}" has ${w.x.length} inputs, expected ${inputWidth}`,
          );
        x.set(w.x, t * inputWidth);
        let missing = false;
        labels.forEach((label, l) => {
          const value = track?.windowTarget(label, w.end);
          y[t * labels.length + l] = value ?? Number.NaN;
          if (value === undefined) missing = true;
          else if (value > 0.5) positives[label] = (positives[label] as number) + 1;
        });
        if (missing) unlabelled++;
        auxLabels.forEach((label, l) => {
          aux[t * auxLabels.length + l] = track?.windowTarget(label, w.end) ?? Number.NaN;
        });
      });
      total += part.length;
      const from = (part[0] as FeaturedWindow).start;
      const to = (part[part.length - 1] as FeaturedWindow).end;
      sequences.push({
        session: session.path,
        streamId,
        windows: part.map(({ index, start, end }) => ({ index, start, end })),
        x,
        y,
        ...(track && { onsets: Object.fromEntries(labels.map((l) => [l, track.onsets(l, from, to)])) }),
        ...(auxLabels.length > 0 && { aux }),
      });
    }
  }
  const { badFrameMessages: _messages, ...counters } = session.counters;
  return {
    sequences,
    summary: {
      path: session.path,
      streams: [...session.windows.keys()],
      windows: total,
      sequences: sequences.length,
      counters,
      unlabelledWindows: unlabelled,
      labelOnlyWindows: session.labelOnly,
      positives,
    },
  };
}

/**
 * Turns labelled recordings into training sequences through the same aligner, feature aggregator, fusion and
 * windowing as the live pipeline: one sequence per stream per recording (cut again at long gaps), each window's
 * fused input and its targets (the label values in force at the window's end, see {@link LabelTrack.windowTarget}).
 * Throws BRAID_ERR_DATASET naming the recording for anything that cannot train: no recordings, an empty recording,
 * no label channel, a stream without labels, a requested label that is missing, features that do not match.
 */
export async function buildDataset(files: readonly string[], options: DatasetOptions = {}): Promise<Dataset> {
  if (files.length === 0)
    throw datasetError('no recordings given: training needs at least one labelled recording');
  const seen = new Set<string>();
  for (const file of files) {
    const key = path.resolve(file);
    if (seen.has(key)) throw datasetError(`recording "${file}" is given twice; each session may count once`);
    seen.add(key);
  }
  const featureConfig = parseFeatureConfig(options.featureConfig ?? DEFAULT_FEATURE_CONFIG);
  const windowing = options.windowing ?? DEFAULT_WINDOWING;
  const gapReset = options.gapReset ?? seconds(5);
  const requireLabels = options.requireLabels ?? true;
  const auxLabels = options.auxLabels ?? [];
  const raw: RawSession[] = [];
  for (const file of files) raw.push(await readSession(file, featureConfig, windowing, requireLabels));
  const labels = options.labels ?? discoverLabels(raw);
  if (labels.length === 0 && requireLabels)
    throw datasetError('the recordings name no labels in their label events');
  if (new Set(labels).size !== labels.length)
    throw datasetError(`labels must be distinct, got ${labels.join(', ')}`);
  if (new Set(auxLabels).size !== auxLabels.length || auxLabels.some((l) => labels.includes(l)))
    throw datasetError(
      `aux labels must be distinct and not learnt ones, got ${auxLabels.join(', ')} beside ${labels.join(', ')}`,
    );
  const inputWidth = featureLayout(featureConfig).total;
  const sequences: Sequence[] = [];
  const sessions: SessionSummary[] = [];
  for (const session of raw) {
    const built = toSequences(session, labels, inputWidth, gapReset, requireLabels, auxLabels);
    sequences.push(...built.sequences);
    sessions.push(built.summary);
  }
  return { featureConfig, windowing, labels, inputWidth, sequences, sessions, auxLabels };
}

/**
 * Refuses to pair a dataset with a model trained on other features or labels (BRAID_ERR_DATASET naming each
 * difference): the numbers would line up in width yet mean something else.
 */
export function assertDatasetMatchesModel(dataset: Dataset, config: ModelConfig): void {
  const diffs = jsonDifferences(config.featureConfig, dataset.featureConfig, 'featureConfig');
  if (config.labels.join('\u0000') !== dataset.labels.join('\u0000'))
    diffs.push(`labels: model has ${config.labels.join(', ')}, dataset has ${dataset.labels.join(', ')}`);
  if (diffs.length > 0)
    throw datasetError(
      `the dataset's features do not match the model's: ${diffs.join('; ').replaceAll('pipeline expects', 'dataset has')}`,
    );
}

/** Number of windows over all sequences. */
export const windowCount = (sequences: readonly Sequence[]): number =>
  sequences.reduce((n, s) => n + s.windows.length, 0);
