import { BraidError } from '../core/errors.js';
import type { Dataset, Sequence } from './dataset.js';

/**
 * Recorded labels (not learnt ones) whose windows count more in the training loss: `{ distractor: 3 }` makes every
 * window whose end falls in a distractor sound weigh three times an ordinary one, in every learnt label's loss — the
 * hard negatives of "speech" are rare (a sixth of the windows) and are what the model gets wrong. Keras's
 * `sample_weight`, by recorded condition.
 */
export type WindowWeights = Readonly<Record<string, number>>;

/**
 * Each sequence with its per-window loss weights: the largest weight of the `weights` labels on (> 0.5) at the
 * window's end, 1 where none is. The labels must be the dataset's aux labels (buildDataset's `auxLabels`) and at
 * least one recording must carry each, so that a misspelt label cannot silently weigh nothing.
 */
export function applyWindowWeights(dataset: Dataset, weights: WindowWeights): readonly Sequence[] {
  const names = Object.keys(weights);
  if (names.length === 0) return dataset.sequences;
  const aux = dataset.auxLabels ?? [];
  const columns = names.map((name) => {
    const column = aux.indexOf(name);
    if (column < 0)
      throw new BraidError(
        'BRAID_ERR_DATASET',
        `window weight label "${name}" was not read with the dataset (aux labels: ${aux.join(', ') || 'none'})`,
      );
    return column;
  });
  const seen = new Set<string>();
  const out = dataset.sequences.map((s) => {
    const values = s.aux;
    if (values === undefined) return s;
    const n = s.windows.length;
    const w = new Float32Array(n).fill(1);
    for (let t = 0; t < n; t++)
      names.forEach((name, i) => {
        const value = values[t * aux.length + (columns[i] as number)] as number;
        if (Number.isNaN(value)) return;
        seen.add(name);
        if (value > 0.5) w[t] = Math.max(w[t] as number, weights[name] as number);
      });
    return { ...s, weights: w };
  });
  const missing = names.filter((name) => !seen.has(name));
  if (missing.length > 0)
    throw new BraidError(
      'BRAID_ERR_DATASET',
      `no recording carries the window weight label${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')}`,
    );
  return out;
}

/** Parses `distractor=3,distractor_music=5` into window weights; each error names what was wrong. */
export function parseWindowWeights(text: string): WindowWeights {
  const out: Record<string, number> = {};
  for (const part of text.split(',')) {
    const match = /^\s*([^=\s]+)\s*=\s*([^\s]+)\s*$/.exec(part);
    const weight = match ? Number(match[2]) : Number.NaN;
    if (!match || !(Number.isFinite(weight) && weight > 0))
      throw new Error(
        `must be LABEL=WEIGHT pairs separated by commas with weights > 0, got "${part.trim()}"`,
      );
    const label = match[1] as string;
    if (label in out) throw new Error(`names label "${label}" twice`);
    out[label] = weight;
  }
  return out;
}
