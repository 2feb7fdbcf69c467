import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cellGroups } from '../../src/model/cell-groups.js';
import {
  type CellType,
  type HeadType,
  type ModelConfig,
  modelDims,
  parseModelConfig,
} from '../../src/model/config.js';
import { ensembleModels } from '../../src/model/ensemble.js';
import { FusedStepKernel, type FusedStepKernelOptions } from '../../src/model/fused-kernel.js';
import { loadModel } from '../../src/model/model-io.js';
import { packWeights } from '../../src/model/packed-weights.js';
import { createModel, type Model, mulberry32, randomWeights } from '../../src/model/weights.js';

interface MemberShape {
  hidden: number;
  units: [number, number, number];
}

function config(
  cell: CellType,
  head: HeadType,
  resetAfter: boolean,
  layout: [number, number, number],
  member: MemberShape,
  labels: number,
): ModelConfig {
  const width = layout[0] + layout[1] + layout[2] + 3;
  const next = mulberry32(99); // one normalization for every member, as training on the same recordings gives
  return parseModelConfig({
    inputLayout: { audio: layout[0], video: layout[1], text: layout[2], mask: 3 },
    encoderUnits: {
      audio: layout[0] && member.units[0],
      video: layout[1] && member.units[1],
      text: layout[2] && member.units[2],
    },
    ...(cell === 'gru' ? { resetAfter } : {}),
    hidden: member.hidden,
    cell,
    labels: Array.from({ length: labels }, (_, i) => `label${i}`),
    head,
    featureConfig: { version: 1 },
    windowing: { size: 500000 },
    normalization: {
      mean: Array.from({ length: width }, () => next() - 0.5),
      std: Array.from({ length: width }, () => 0.5 + next()),
    },
  });
}

/** y of every step of `n` sequences of `t` steps through a model, from a zero state, then the last state. */
function run(
  model: Model,
  xs: Float32Array,
  n: number,
  t: number,
  options: FusedStepKernelOptions = {},
): Float32Array {
  return runWithState(model, xs, n, t, options).ys;
}

function runWithState(
  model: Model,
  xs: Float32Array,
  n: number,
  t: number,
  options: FusedStepKernelOptions & { inPlace?: boolean },
): { ys: Float32Array; state: Float32Array } {
  const d = modelDims(model.config);
  const kernel = new FusedStepKernel(model, n, options);
  // The step interface lets state and nextState be one array: each group reads its state before writing it.
  const inPlace = options.inPlace === true;
  let state = new Float32Array(n * d.state);
  const ys = new Float32Array(n * t * d.labels);
  const x = new Float32Array(n * d.input);
  const y = new Float32Array(n * d.labels);
  for (let step = 0; step < t; step++) {
    for (let r = 0; r < n; r++)
      x.set(xs.subarray((r * t + step) * d.input, (r * t + step + 1) * d.input), r * d.input);
    const next = inPlace ? state : new Float32Array(n * d.state);
    kernel.step(n, x, state, y, next);
    state = next;
    for (let r = 0; r < n; r++)
      ys.set(y.subarray(r * d.labels, (r + 1) * d.labels), (r * t + step) * d.labels);
  }
  kernel.dispose();
  return { ys, state };
}

/** The members' scores combined as the ensemble claims to: a head over the mean of their logits. */
function meanLogitScores(memberYs: Float32Array[], head: HeadType, labels: number): Float64Array {
  const first = memberYs[0] as Float32Array;
  const out = new Float64Array(first.length);
  // Sigmoid: logit = ln(y / (1 − y)). Softmax: ln y is the logit less the row's log-sum-exp, a per-row constant
  // that the softmax of the mean cancels.
  const logit = (y: number): number => (head === 'sigmoid' ? Math.log(y / (1 - y)) : Math.log(y));
  for (let row = 0; row < first.length / labels; row++) {
    const mean = Array.from({ length: labels }, (_, l) => {
      let s = 0;
      for (const ys of memberYs) s += logit(ys[row * labels + l] as number);
      return s / memberYs.length;
    });
    const top = Math.max(...mean);
    const sum = mean.reduce((a, m) => a + Math.exp(m - top), 0);
    for (const [l, m] of mean.entries())
      out[row * labels + l] = head === 'sigmoid' ? 1 / (1 + Math.exp(-m)) : Math.exp(m - top) / sum;
  }
  return out;
}

/** Features anywhere, presence masks of 0 and 1 as the pipeline sends them. */
function inputs(model: Model, n: number, t: number, seed: number): Float32Array {
  const d = modelDims(model.config);
  const next = mulberry32(seed);
  return Float32Array.from({ length: n * t * d.input }, (_, i) =>
    i % d.input >= d.maskOffset ? Math.round(next()) : (next() * 2 - 1) * 2,
  );
}

const memberArb: fc.Arbitrary<MemberShape> = fc.record({
  hidden: fc.integer({ min: 1, max: 9 }),
  units: fc.tuple(
    fc.integer({ min: 1, max: 6 }),
    fc.integer({ min: 1, max: 6 }),
    fc.integer({ min: 1, max: 4 }),
  ),
});

const caseArb = fc.record({
  cell: fc.constantFrom<CellType>('gru', 'lstm'),
  head: fc.constantFrom<HeadType>('sigmoid', 'softmax'),
  resetAfter: fc.boolean(),
  layout: fc.tuple(
    fc.integer({ min: 0, max: 7 }),
    fc.integer({ min: 0, max: 5 }),
    fc.integer({ min: 0, max: 4 }),
  ),
  members: fc.array(memberArb, { minLength: 2, maxLength: 4 }),
  labels: fc.integer({ min: 2, max: 4 }),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

const membersOf = (s: Case): Model[] =>
  s.members.map((m, i) => {
    const c = config(s.cell, s.head, s.resetAfter, s.layout, m, s.labels);
    return createModel(c, randomWeights(c, { seed: s.seed + i, biasScale: 0.5 }));
  });

describe('ensembleModels', () => {
  it('scores every step as a head over the mean of its members’ logits (GRU and LSTM, both heads, any sizes)', () => {
    fc.assert(
      fc.property(caseArb, (s) => {
        const models = membersOf(s);
        const merged = ensembleModels(models);
        expect(merged.config.hidden).toBe(s.members.reduce((a, m) => a + m.hidden, 0));
        const n = 3;
        const t = 6;
        const xs = inputs(merged, n, t, s.seed);
        const expected = meanLogitScores(
          models.map((m) => run(m, xs, n, t)),
          s.head,
          s.labels,
        );
        const actual = run(merged, xs, n, t);
        for (let i = 0; i < actual.length; i++) expect(actual[i]).toBeCloseTo(expected[i] as number, 5);
      }),
      { numRuns: 60 },
    );
  });

  it('refuses one member, members of other inputs, windowing or labels, and imported fused encoders, naming why', () => {
    const member = { hidden: 4, units: [3, 2, 2] as [number, number, number] };
    const base = config('gru', 'sigmoid', true, [5, 3, 2], member, 2);
    const model = (c: ModelConfig): Model => createModel(c, randomWeights(c));
    expect(() => ensembleModels([model(base)])).toThrow(/at least 2 members, got 1/);
    const otherNorm = {
      ...base,
      normalization: { ...base.normalization, mean: base.normalization.mean.map((v) => v + 1) },
    };
    expect(() => ensembleModels([model(base), model(otherNorm)])).toThrow(
      /member 2 differs from member 1 in normalization\.mean\[0\]/,
    );
    expect(() => ensembleModels([model(base), model({ ...base, windowing: { size: 250000 } })])).toThrow(
      /member 2 differs from member 1 in windowing\.size \(250000 vs 500000\)/,
    );
    expect(() => ensembleModels([model(base), model({ ...base, labels: ['label0', 'other'] })])).toThrow(
      /labels\[1\]/,
    );
    const lstm = config('lstm', 'sigmoid', true, [5, 3, 2], member, 2);
    expect(() => ensembleModels([model(base), model(lstm)])).toThrow(/in cell/);
    // reset_after unset means true: the same GRU however it is spelt, and the other kind is refused.
    const { resetAfter: _unset, ...implicit } = base;
    expect(ensembleModels([model(base), model(implicit as ModelConfig)]).config.hidden).toBe(8);
    expect(() => ensembleModels([model(base), model({ ...base, resetAfter: false })])).toThrow(
      /member 2 differs from member 1 in resetAfter \(false vs true\); members must be trained by one command/,
    );
    // Wider than a model may be: refused here, not when the saved merge is next loaded.
    const wide = { ...base, encoderUnits: { ...base.encoderUnits, audio: 40_000 } };
    expect(() => ensembleModels([model(wide), model(wide)])).toThrow(
      /invalid model config: encoderUnits\.audio/,
    );
    const fused = parseModelConfig({
      ...base,
      encoderUnits: { audio: 0, video: 0, text: 0 },
      fusedEncoder: [{ units: 4, activation: 'relu' }],
    });
    expect(() => ensembleModels([model(fused), model(fused)])).toThrow(/member 1 has a fused encoder/);
  });
});

describe('an ensemble stepped member by member (split cell)', () => {
  it('finds the members as the cell’s groups: their hidden units and the encoder units each reads', () => {
    fc.assert(
      fc.property(caseArb, (s) => {
        const members = membersOf(s);
        const groups = cellGroups(ensembleModels(members));
        let start = 0;
        const seen = { audio: 0, video: 0, text: 0 };
        expect(groups).toHaveLength(members.length);
        groups.forEach((g, k) => {
          const member = (members[k] as Model).config;
          expect(g.hiddenStart).toBe(start);
          expect(g.hidden).toBe(member.hidden);
          start += member.hidden;
          for (const m of ['audio', 'video', 'text'] as const) {
            const units = member.encoderUnits[m];
            expect(g.encoderUnits[m]).toEqual(Array.from({ length: units }, (_, i) => seen[m] + i));
            seen[m] += units;
          }
        });
      }),
      { numRuns: 40 },
    );
  });

  it('gives the same bits, scores and state, as the whole cell in one product (GRU both ways, LSTM, both heads)', () => {
    fc.assert(
      fc.property(caseArb, (s) => {
        const merged = ensembleModels(membersOf(s));
        // Members of 1..9 units: split at any size here (the default merges groups under 16 units).
        const split1 = { splitCell: true, minGroupUnits: 1 };
        expect(packWeights(merged, split1).groups).toHaveLength(s.members.length);
        const n = 5;
        const t = 7;
        const xs = inputs(merged, n, t, s.seed);
        const whole = runWithState(merged, xs, n, t, { splitCell: false });
        for (const split of [
          runWithState(merged, xs, n, t, split1),
          runWithState(merged, xs, n, t, { ...split1, inPlace: true }),
        ]) {
          expect(Buffer.from(split.ys.buffer)).toEqual(Buffer.from(whole.ys.buffer));
          expect(Buffer.from(split.state.buffer)).toEqual(Buffer.from(whole.state.buffer));
        }
      }),
      { numRuns: 60 },
    );
  });

  it('splits the bundled model into the members its ensemble.json names', async () => {
    const manifest = JSON.parse(await readFile('models/demo/ensemble.json', 'utf8')) as {
      members: { hidden: number }[];
    };
    const groups = cellGroups(await loadModel('models/demo'));
    expect(groups.map((g) => g.hidden)).toEqual(manifest.members.map((m) => m.hidden));
  });

  it('keeps a trained-like cell whole: everything connected, an imported fused encoder, or groups interleaved', () => {
    const member = { hidden: 4, units: [3, 2, 2] as [number, number, number] };
    const dense = config('gru', 'sigmoid', true, [5, 3, 2], member, 2);
    const model = createModel(dense, randomWeights(dense, { seed: 3 }));
    expect(cellGroups(model)).toHaveLength(1);
    expect(packWeights(model, { splitCell: true }).groups).toHaveLength(1);
    const fused = parseModelConfig({
      ...dense,
      encoderUnits: { audio: 0, video: 0, text: 0 },
      fusedEncoder: [{ units: 4, activation: 'relu' }],
    });
    expect(cellGroups(createModel(fused, randomWeights(fused)))).toHaveLength(1);
    // Units 0 and 2 read only each other, 1 and 3 likewise: two groups, but not contiguous ones.
    const H = 4;
    const weights = randomWeights(dense, { seed: 5 });
    const U = weights['cell/recurrent_kernel'] as Float32Array;
    const W = weights['cell/kernel'] as Float32Array;
    for (let g = 0; g < 3; g++)
      for (let j = 0; j < H; j++) {
        for (let i = 0; i < H; i++) if (i % 2 !== j % 2) U[i * 3 * H + g * H + j] = 0;
        // Encoder outputs 0..6 (3 audio, 2 video, 2 text): the even ones feed the even units.
        for (let r = 0; r < 7; r++) if (r % 2 !== j % 2) W[r * 3 * H + g * H + j] = 0;
      }
    const interleaved = createModel(dense, weights);
    expect(cellGroups(interleaved)).toHaveLength(1);
    expect(packWeights(interleaved, { splitCell: true, minGroupUnits: 1 }).groups).toHaveLength(1);
  });

  it('packs tiny groups with their neighbours (at least 16 units by default), with the same bits', () => {
    // 40 units that each read only themselves and one audio encoder output: 40 groups of 1, packed as 16, 16 and 8;
    // the video and text outputs nobody reads go to the first group.
    const member = { hidden: 40, units: [40, 3, 2] as [number, number, number] };
    const c = config('gru', 'sigmoid', true, [5, 3, 2], member, 2);
    const weights = randomWeights(c, { seed: 11, biasScale: 0.5 });
    const H = 40;
    const U = weights['cell/recurrent_kernel'] as Float32Array;
    const W = weights['cell/kernel'] as Float32Array;
    for (let g = 0; g < 3; g++)
      for (let j = 0; j < H; j++) {
        for (let i = 0; i < H; i++) if (i !== j) U[i * 3 * H + g * H + j] = 0;
        for (let r = 0; r < 45; r++) if (r !== j) W[r * 3 * H + g * H + j] = 0;
      }
    const model = createModel(c, weights);
    expect(cellGroups(model)).toHaveLength(40);
    const packed = packWeights(model, { splitCell: true }).groups;
    expect(packed.map((g) => [g.hiddenStart, g.hidden, g.encoders.map((e) => e.units)])).toEqual([
      [0, 16, [16, 3, 2]],
      [16, 16, [16]],
      [32, 8, [8]],
    ]);
    const xs = inputs(model, 6, 5, 4);
    const whole = runWithState(model, xs, 6, 5, { splitCell: false });
    const split = runWithState(model, xs, 6, 5, {});
    expect(Buffer.from(split.ys.buffer)).toEqual(Buffer.from(whole.ys.buffer));
    expect(Buffer.from(split.state.buffer)).toEqual(Buffer.from(whole.state.buffer));
  });
});
