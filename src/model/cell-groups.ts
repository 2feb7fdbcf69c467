import {
  encoderModalityAt,
  FEATURE_MODALITIES,
  type FeatureModality,
  type ModelDims,
  modelDims,
} from './config.js';
import type { Model } from './weights.js';

/**
 * Hidden units of a cell that form a model of their own: their gates read only their own encoder outputs, the
 * shared presence mask and their own state, and no unit outside them reads theirs. An ensemble's members
 * (ensemble.ts) are such groups; a trained cell is one group.
 */
export interface CellGroup {
  /** The group's hidden units are [hiddenStart, hiddenStart + hidden). */
  readonly hiddenStart: number;
  readonly hidden: number;
  /** Per modality, the units of that modality's encoder the group's gates read, ascending. */
  readonly encoderUnits: Readonly<Record<FeatureModality, readonly number[]>>;
}

/**
 * The cell-input rows a group's gates read, in the order the whole product adds them: its encoder outputs modality
 * by modality, then the presence mask (the last 3 rows).
 */
export function groupInputRows(g: CellGroup, dims: ModelDims): number[] {
  return [
    ...FEATURE_MODALITIES.flatMap((m) => g.encoderUnits[m].map((u) => dims.encoderOffset[m] + u)),
    dims.cellInput - 3,
    dims.cellInput - 2,
    dims.cellInput - 1,
  ];
}

/** Union-find over hidden units and encoder outputs, with path halving. */
function disjointSets(size: number): { find(a: number): number; union(a: number, b: number): void } {
  const parent = Int32Array.from({ length: size }, (_, i) => i);
  const find = (a: number): number => {
    let x = a;
    while (parent[x] !== x) {
      const up = parent[parent[x] as number] as number;
      parent[x] = up;
      x = up;
    }
    return x;
  };
  return {
    find,
    union(a, b) {
      const ra = find(a);
      const rb = find(b);
      if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
    },
  };
}

/** The whole cell as one group: what every kernel computes when it does not split the cell. */
export function wholeCell(model: Model): CellGroup {
  const units = model.config.encoderUnits;
  return {
    hiddenStart: 0,
    hidden: model.config.hidden,
    encoderUnits: {
      audio: Array.from({ length: units.audio }, (_, i) => i),
      video: Array.from({ length: units.video }, (_, i) => i),
      text: Array.from({ length: units.text }, (_, i) => i),
    },
  };
}

/**
 * The cell's groups, found from where its kernels are exactly zero: hidden unit j joins every encoder output and
 * every hidden unit that one of its gate columns has a non-zero weight for. Groups are returned in hidden order;
 * the cell is one group when everything connects (any trained cell), when the model has a fused encoder (its cell
 * input is one dense layer's output), or when a group's units are not contiguous. An encoder output no gate reads
 * goes to the first group, so everything the dense cell computes is still computed.
 *
 * Splitting on exact zeros changes no result: each gate column's sum skips only terms of a zero weight, and the
 * kernels add k in order, so the remaining terms meet in the same order as in the dense product.
 */
export function cellGroups(model: Model): CellGroup[] {
  const { config, weights } = model;
  if (config.fusedEncoder !== undefined) return [wholeCell(model)];
  const d = modelDims(config);
  const H = d.hidden;
  const gates = d.gates / H;
  const encoded = d.cellInput - 3;
  const sets = disjointSets(H + encoded);
  const kernel = weights['cell/kernel'] as Float32Array;
  const recurrent = weights['cell/recurrent_kernel'] as Float32Array;
  const reads = (matrix: Float32Array, row: number, j: number): boolean => {
    for (let g = 0; g < gates; g++) if (matrix[row * d.gates + g * H + j] !== 0) return true;
    return false;
  };
  for (let j = 0; j < H; j++) {
    for (let r = 0; r < encoded; r++) if (reads(kernel, r, j)) sets.union(j, H + r);
    for (let i = 0; i < H; i++) if (reads(recurrent, i, j)) sets.union(j, i);
  }
  const starts: number[] = [];
  const roots: number[] = [];
  for (let j = 0; j < H; j++) {
    const root = sets.find(j);
    if (root === roots[roots.length - 1]) continue;
    if (roots.includes(root)) return [wholeCell(model)];
    roots.push(root);
    starts.push(j);
  }
  if (roots.length === 1) return [wholeCell(model)];
  const encoderUnits = roots.map(() => ({
    audio: [] as number[],
    video: [] as number[],
    text: [] as number[],
  }));
  for (let r = 0; r < encoded; r++) {
    const m = encoderModalityAt(d, r);
    const owner = Math.max(0, roots.indexOf(sets.find(H + r)));
    encoderUnits[owner]?.[m].push(r - d.encoderOffset[m]);
  }
  return roots.map((_, k) => ({
    hiddenStart: starts[k] as number,
    hidden: (starts[k + 1] ?? H) - (starts[k] as number),
    encoderUnits: encoderUnits[k] as CellGroup['encoderUnits'],
  }));
}
