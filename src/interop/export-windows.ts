import path from 'node:path';
import type { WindowingConfig } from '../align/windowing.js';
import { type Micros, seconds } from '../core/time.js';
import { DEFAULT_FEATURE_CONFIG, type FeatureConfig, featureLayout } from '../features/config.js';
import { buildDataset, type Sequence } from '../train/dataset.js';
import { encodeNpz, type NpzArray } from './npz.js';
import { liveWindowing, windowingJson } from './windowing.js';
import {
  columnRanges,
  type SequenceMeta,
  WINDOWS_FORMAT,
  WINDOWS_META,
  type WindowsMeta,
} from './windows-meta.js';

export interface ExportWindowsOptions {
  /** Features per window (default: the live default). */
  readonly featureConfig?: FeatureConfig;
  /** The live windowing (default: the live default); see {@link liveWindowing}. */
  readonly windowing?: WindowingConfig;
  /** Label columns, in order (default: every label found, in order of first appearance). */
  readonly labels?: readonly string[];
  /** As the runtime's gapReset (default 5 s): a longer gap between two windows of a stream starts a new sequence. */
  readonly gapReset?: Micros;
  /** Recorded in the metadata: the model directory the features and windowing come from. */
  readonly modelDir?: string;
}

export interface WindowsExport {
  readonly meta: WindowsMeta;
  /** The .npz file's bytes. */
  readonly npz: Uint8Array;
}

const sanitize = (text: string): string => text.replace(/[^A-Za-z0-9_.-]/g, '_') || '_';

/**
 * Array keys, one per sequence: the recording's file name without .mcap, then `.<stream>` when the recording has
 * more than one stream, then `.<k>` when a stream was cut into several sequences at gaps; made unique with `_2`…
 */
export function sequenceKeys(sequences: readonly Sequence[]): string[] {
  const streamsOf = new Map<string, Set<string>>();
  const partsOf = new Map<string, number>();
  for (const s of sequences) {
    const streams = streamsOf.get(s.session) ?? new Set<string>();
    streams.add(s.streamId);
    streamsOf.set(s.session, streams);
    const id = `${s.session}\u0000${s.streamId}`;
    partsOf.set(id, (partsOf.get(id) ?? 0) + 1);
  }
  const seenPart = new Map<string, number>();
  const used = new Set<string>();
  return sequences.map((s) => {
    const id = `${s.session}\u0000${s.streamId}`;
    const part = seenPart.get(id) ?? 0;
    seenPart.set(id, part + 1);
    let key = sanitize(path.basename(s.session).replace(/\.mcap$/i, ''));
    if ((streamsOf.get(s.session)?.size ?? 0) > 1) key += `.${sanitize(s.streamId)}`;
    if ((partsOf.get(id) ?? 0) > 1) key += `.${part}`;
    let unique = key;
    for (let n = 2; used.has(unique); n++) unique = `${key}_${n}`;
    used.add(unique);
    return unique;
  });
}

/**
 * `braid export`: every recording's windows as sequences, built by the training dataset code (src/train/dataset.ts)
 * and so by the live pipeline's feature stage: same alignment, features and fusion, before the model's own
 * normalisation. Per sequence: x_<key> float32 [windows, width], t_<key> int64 window end times (µs), and
 * y_<key> float32 [windows, labels] (NaN before a label's first event) when there are labels; plus meta.json.
 * Recordings without labels are exported too. Dataset errors (an empty recording, a missing file…) are thrown as
 * they are (BRAID_ERR_DATASET).
 */
export async function exportWindows(
  files: readonly string[],
  options: ExportWindowsOptions = {},
): Promise<WindowsExport> {
  const featureConfig = options.featureConfig ?? DEFAULT_FEATURE_CONFIG;
  const windowing = options.windowing ?? liveWindowing();
  const gapReset = options.gapReset ?? seconds(5);
  const dataset = await buildDataset(files, {
    featureConfig,
    windowing,
    gapReset,
    requireLabels: false,
    ...(options.labels ? { labels: options.labels } : {}),
  });
  const keys = sequenceKeys(dataset.sequences);
  const width = dataset.inputWidth;
  const L = dataset.labels.length;
  const arrays: NpzArray[] = [];
  const sequences: SequenceMeta[] = dataset.sequences.map((s, i) => {
    const key = keys[i] as string;
    const T = s.windows.length;
    arrays.push({ key: `x_${key}`, values: s.x, shape: [T, width] });
    if (L > 0) arrays.push({ key: `y_${key}`, values: s.y, shape: [T, L] });
    arrays.push({ key: `t_${key}`, values: BigInt64Array.from(s.windows, (w) => BigInt(w.end)), shape: [T] });
    return {
      key,
      session: s.session,
      stream: s.streamId,
      windows: T,
      firstIndex: s.windows[0]?.index ?? -1,
      lastIndex: s.windows[T - 1]?.index ?? -1,
    };
  });
  const layout = featureLayout(dataset.featureConfig);
  const inputLayout = { audio: layout.audio, video: layout.video, text: layout.text, mask: 3 } as const;
  const meta: WindowsMeta = {
    format: WINDOWS_FORMAT,
    version: 1,
    width,
    inputLayout,
    columns: columnRanges(inputLayout),
    maskColumns: ['audio', 'video', 'text'],
    labels: dataset.labels,
    featureConfig: dataset.featureConfig,
    windowing: windowingJson(windowing),
    gapReset,
    timeUnit: 'microseconds',
    sequences,
    sessions: dataset.sessions,
    ...(options.modelDir === undefined ? {} : { model: options.modelDir }),
  };
  const npz = encodeNpz(arrays, {
    [WINDOWS_META]: new TextEncoder().encode(`${JSON.stringify(meta, null, 2)}\n`),
  });
  return { meta, npz };
}
