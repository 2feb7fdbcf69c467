import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { WindowingConfig } from '../align/windowing.js';
import { type FeatureConfig, featureLayout, parseFeatureConfig } from '../features/config.js';
import type { InputLayout } from '../model/config.js';
import { InteropError } from './errors.js';
import { readZipMember } from './npz.js';
import { liveWindowing } from './windowing.js';

/** The .npz member with the export's description (numpy.load returns it as bytes: json.loads(data["meta.json"])). */
export const WINDOWS_META = 'meta.json';
export const WINDOWS_FORMAT = 'braid-windows';

/** Where each part of the fused input sits: half-open column ranges [start, end). */
export interface ColumnRanges {
  readonly audio: readonly [number, number];
  readonly video: readonly [number, number];
  readonly text: readonly [number, number];
  /** Presence of audio, video, text in that order (1 present, 0 absent). */
  readonly mask: readonly [number, number];
}

export interface SequenceMeta {
  /** The suffix of its arrays: x_<key>, y_<key>, t_<key>. */
  readonly key: string;
  /** The recording it comes from, as given on the command line. */
  readonly session: string;
  readonly stream: string;
  readonly windows: number;
  /** Window indices (the aligner's, also in braid's predictions) of its first and last window. */
  readonly firstIndex: number;
  readonly lastIndex: number;
}

/** Everything a reader needs besides the arrays; written as the `meta.json` member of the .npz. */
export interface WindowsMeta {
  readonly format: typeof WINDOWS_FORMAT;
  readonly version: 1;
  readonly width: number;
  readonly inputLayout: InputLayout;
  readonly columns: ColumnRanges;
  readonly maskColumns: readonly ['audio', 'video', 'text'];
  /** Column names of y_<key>, in order; empty when the recordings carry no labels. */
  readonly labels: readonly string[];
  readonly featureConfig: FeatureConfig;
  /** The live windowing the windows were cut with (idleTimeout null when off). */
  readonly windowing: Record<string, unknown>;
  /** µs between two windows of a stream beyond which the runtime starts from a zero state: a new sequence here. */
  readonly gapReset: number;
  readonly timeUnit: 'microseconds';
  readonly sequences: readonly SequenceMeta[];
  /** Per recording: windows, sequences, what the feature stage dropped or refused, windows without targets. */
  readonly sessions: readonly unknown[];
  /** The model directory whose features and windowing were used, when one was named. */
  readonly model?: string;
}

/** The column ranges of a layout [audio | video | text | mask]. */
export function columnRanges(layout: InputLayout): ColumnRanges {
  const a = layout.audio;
  const v = a + layout.video;
  const t = v + layout.text;
  return { audio: [0, a], video: [a, v], text: [v, t], mask: [t, t + 3] };
}

const metaSchema = z
  .object({
    format: z.literal(WINDOWS_FORMAT),
    version: z.literal(1),
    width: z.number().int().positive(),
    labels: z.array(z.string().min(1)),
    featureConfig: z.unknown(),
    windowing: z.record(z.string(), z.unknown()),
    gapReset: z.number().positive(),
    sequences: z.array(z.object({ key: z.string(), windows: z.number().int().nonnegative() }).loose()),
  })
  .loose();

/** What an import takes from an export: features, layout, labels and windowing, checked. */
export interface ExportedFeatures {
  readonly featureConfig: FeatureConfig;
  readonly inputLayout: InputLayout;
  readonly labels: readonly string[];
  readonly windowing: WindowingConfig;
  readonly width: number;
}

/** Reads and checks the metadata of a `braid export` .npz. Throws InteropError `bad_file` naming what is wrong. */
export async function readWindowsMeta(file: string): Promise<ExportedFeatures> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new InteropError('bad_file', `cannot read ${file}: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  }
  const member = readZipMember(bytes, WINDOWS_META, file);
  if (member === undefined)
    throw new InteropError('bad_file', `${file} has no ${WINDOWS_META}: it was not written by braid export`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(member));
  } catch (error) {
    throw new InteropError('bad_file', `${WINDOWS_META} in ${file} is not JSON: ${(error as Error).message}`);
  }
  const parsed = metaSchema.safeParse(json);
  if (!parsed.success)
    throw new InteropError(
      'bad_file',
      `${WINDOWS_META} in ${file} is not braid export metadata: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  const meta = parsed.data;
  let featureConfig: FeatureConfig;
  let windowing: WindowingConfig;
  try {
    featureConfig = parseFeatureConfig(meta.featureConfig, 'featureConfig');
    windowing = liveWindowing(meta.windowing);
  } catch (error) {
    throw new InteropError('bad_file', `${WINDOWS_META} in ${file}: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  }
  const layout = featureLayout(featureConfig);
  if (layout.total !== meta.width)
    throw new InteropError(
      'bad_file',
      `${WINDOWS_META} in ${file} says ${meta.width} columns, its feature config gives ${layout.total}`,
    );
  return {
    featureConfig,
    inputLayout: { audio: layout.audio, video: layout.video, text: layout.text, mask: 3 },
    labels: meta.labels,
    windowing,
    width: meta.width,
  };
}
