import type { RecordedPrediction } from './recording-reader.js';

/** One window whose predictions differ between two runs (or that only one run has). */
export interface WindowDifference {
  readonly streamId: string;
  readonly windowIndex: number;
  readonly windowEnd: number;
  /** `only_a` / `only_b`: one run has no prediction for the window; `differs`: both have one, and they differ. */
  readonly kind: 'only_a' | 'only_b' | 'differs';
  /** Labels whose score differs by more than the tolerance, with both scores. */
  readonly scores?: Readonly<Record<string, { readonly a: number | null; readonly b: number | null }>>;
  /** The presence mask or the window's start/end differ. */
  readonly present?: boolean;
  readonly times?: boolean;
}

export interface StreamDiff {
  readonly streamId: string;
  readonly same: number;
  readonly differs: number;
  readonly onlyA: number;
  readonly onlyB: number;
  /** Largest |a − b| per label over the windows both runs have. */
  readonly maxScoreDelta: Readonly<Record<string, number>>;
  /** The first window (by window end) that differs, if any. */
  readonly first?: WindowDifference;
}

export interface PredictionDiff {
  readonly tolerance: number;
  readonly models: { readonly a: readonly string[]; readonly b: readonly string[] };
  readonly same: number;
  readonly differs: number;
  readonly onlyA: number;
  readonly onlyB: number;
  readonly identical: boolean;
  readonly streams: readonly StreamDiff[];
  /** Every differing window, in (window end, stream) order. */
  readonly differences: readonly WindowDifference[];
}

const key = (p: { streamId: string; windowIndex: number }) => `${p.streamId}\u0000${p.windowIndex}`;

/** Predictions keyed by (stream, window); a window predicted twice (two models in one file) is an error. */
function byWindow(predictions: Iterable<RecordedPrediction>, side: string): Map<string, RecordedPrediction> {
  const out = new Map<string, RecordedPrediction>();
  for (const p of predictions) {
    const k = key(p);
    const seen = out.get(k);
    if (seen)
      throw new TypeError(
        `${side} has two predictions for window ${p.windowIndex} of stream "${p.streamId}"${
          seen.model !== p.model ? ` (models ${seen.model ?? 'unnamed'} and ${p.model ?? 'unnamed'})` : ''
        }: compare one model's predictions per file`,
      );
    out.set(k, p);
  }
  return out;
}

function compare(a: RecordedPrediction, b: RecordedPrediction, tolerance: number) {
  const scores: Record<string, { a: number | null; b: number | null }> = {};
  const deltas: Record<string, number> = {};
  for (const label of new Set([...Object.keys(a.scores), ...Object.keys(b.scores)])) {
    const x = a.scores[label];
    const y = b.scores[label];
    const delta = x === undefined || y === undefined ? Number.POSITIVE_INFINITY : Math.abs(x - y);
    deltas[label] = delta;
    if (delta > tolerance) scores[label] = { a: x ?? null, b: y ?? null };
  }
  const present = (['audio', 'video', 'text', 'label'] as const).some((m) => a.present[m] !== b.present[m]);
  const times = a.windowStart !== b.windowStart || a.windowEnd !== b.windowEnd;
  const differs = present || times || Object.keys(scores).length > 0;
  return { differs, scores, present, times, deltas };
}

/**
 * Where two runs' predictions differ, window by window: `braid diff A.mcap B.mcap`. Windows are matched by stream
 * and window index; scores count as equal within `tolerance` (default 0: bit for bit, as two replays of one
 * recording by one model must be).
 */
export function diffPredictions(
  a: Iterable<RecordedPrediction>,
  b: Iterable<RecordedPrediction>,
  tolerance = 0,
): PredictionDiff {
  const left = byWindow(a, 'A');
  const right = byWindow(b, 'B');
  const differences: WindowDifference[] = [];
  const streams = new Map<
    string,
    {
      same: number;
      differs: number;
      onlyA: number;
      onlyB: number;
      max: Record<string, number>;
      first?: WindowDifference;
    }
  >();
  const stream = (id: string) => {
    let s = streams.get(id);
    if (!s) streams.set(id, (s = { same: 0, differs: 0, onlyA: 0, onlyB: 0, max: {} }));
    return s;
  };
  for (const [k, p] of left) {
    const s = stream(p.streamId);
    const q = right.get(k);
    const base = { streamId: p.streamId, windowIndex: p.windowIndex, windowEnd: p.windowEnd };
    if (!q) {
      s.onlyA += 1;
      differences.push({ ...base, kind: 'only_a' });
      continue;
    }
    const c = compare(p, q, tolerance);
    for (const [label, d] of Object.entries(c.deltas)) s.max[label] = Math.max(s.max[label] ?? 0, d);
    if (!c.differs) {
      s.same += 1;
      continue;
    }
    s.differs += 1;
    differences.push({
      ...base,
      kind: 'differs',
      ...(Object.keys(c.scores).length > 0 && { scores: c.scores }),
      ...(c.present && { present: true }),
      ...(c.times && { times: true }),
    });
  }
  for (const [k, q] of right)
    if (!left.has(k)) {
      stream(q.streamId).onlyB += 1;
      differences.push({
        streamId: q.streamId,
        windowIndex: q.windowIndex,
        windowEnd: q.windowEnd,
        kind: 'only_b',
      });
    }
  differences.sort(
    (x, y) => x.windowEnd - y.windowEnd || (x.streamId < y.streamId ? -1 : x.streamId > y.streamId ? 1 : 0),
  );
  for (const d of differences) {
    const s = stream(d.streamId);
    s.first ??= d;
  }
  const models = (m: Map<string, RecordedPrediction>) =>
    [...new Set([...m.values()].map((p) => p.model ?? 'unnamed'))].sort();
  const total = (f: 'same' | 'differs' | 'onlyA' | 'onlyB') =>
    [...streams.values()].reduce((n, s) => n + s[f], 0);
  return {
    tolerance,
    models: { a: models(left), b: models(right) },
    same: total('same'),
    differs: total('differs'),
    onlyA: total('onlyA'),
    onlyB: total('onlyB'),
    identical: differences.length === 0,
    streams: [...streams.entries()]
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
      .map(([streamId, s]) => ({
        streamId,
        same: s.same,
        differs: s.differs,
        onlyA: s.onlyA,
        onlyB: s.onlyB,
        maxScoreDelta: s.max,
        ...(s.first && { first: s.first }),
      })),
    differences,
  };
}
