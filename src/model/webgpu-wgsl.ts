import { type CellGroup, groupInputRows } from './cell-groups.js';
import type { ModelDims } from './config.js';
import { type PackedWeights, wholeCellGroup } from './packed-weights.js';

/** Rows per workgroup: the CPU gemm's 4-row block, here the 4 lanes of a vec4. */
export const GPU_ROW_BLOCK = 4;

export interface ShaderShape {
  /** Threads per workgroup, ≥ 1 (the loops over the 4 rows and 3 mask entries stride by it). */
  readonly workgroupSize: number;
  /** Rows the input buffer has room for: maxBatch rounded up to {@link GPU_ROW_BLOCK}. */
  readonly rows: number;
  /** Slots in the state table; a slot number is clamped below it, so even a bad one stays in the buffer. */
  readonly slots: number;
  /**
   * The cell's groups (cellGroups: an ensemble's members) as {@link shaderCellGroups} gives them: each hidden unit's
   * gates then sum only over its own group's cell-input rows and state, skipping the zero blocks between members.
   * Absent: the cell is one group.
   */
  readonly groups?: readonly ShaderCellGroup[];
}

/** A group of the cell as the shader loops over it. */
export interface ShaderCellGroup {
  /** Its hidden units: [hiddenStart, hiddenStart + hidden). */
  readonly hiddenStart: number;
  readonly hidden: number;
  /** The cell-input rows its gates read (its encoder outputs, then the mask), as ascending [start, end) ranges. */
  readonly inputRanges: readonly (readonly [number, number])[];
}

/**
 * The cell groups' cell-input rows (groupInputRows, as cpu-fused packs them; of per-modality encoders: a model with a
 * fused encoder is one group, which the shader's default covers) as ranges, in the order the whole product adds
 * them (k ascending), so a gate's sum over its own rows meets its terms in the same order and only zero-weight terms
 * are left out.
 */
export function shaderCellGroups(groups: readonly CellGroup[], dims: ModelDims): ShaderCellGroup[] {
  return groups.map((g) => {
    const inputRanges: [number, number][] = [];
    for (const r of groupInputRows(g, dims)) {
      const last = inputRanges[inputRanges.length - 1];
      if (last !== undefined && last[1] === r) last[1] = r + 1;
      else inputRanges.push([r, r + 1]);
    }
    return { hiddenStart: g.hiddenStart, hidden: g.hidden, inputRanges };
  });
}

/** `for` loops of k over the ranges, each running `body`. */
const loopsOver = (ranges: readonly (readonly [number, number])[], body: string): string =>
  ranges
    .map(
      ([start, end]) => `
      for (var k = ${u(start)}; k < ${u(end)}; k++) {${body}
      }`,
    )
    .join('');

/**
 * Per-group code for hidden unit j: one group's as is; several, a branch per group on j (the groups are contiguous
 * ranges of units, so the threads of a GPU wave mostly take the same branch).
 */
function byGroup(groups: readonly ShaderCellGroup[], code: (g: ShaderCellGroup) => string): string {
  if (groups.length === 1) return code(groups[0] as ShaderCellGroup);
  return groups
    .map((g, i) => {
      const end = g.hiddenStart + g.hidden;
      const test = i === groups.length - 1 ? ' else {' : `${i === 0 ? '' : ' else '}if (j < ${u(end)}) {`;
      return `${i === 0 ? '\n      ' : ''}${test}${code(g).replace(/\n/g, '\n  ')}
      }`;
    })
    .join('');
}

const hiddenRange = (g: ShaderCellGroup): [number, number] => [g.hiddenStart, g.hiddenStart + g.hidden];

/** Where a GRU gate's columns start in a packed row: z, then r and the candidate h, H4 apart. */
const GRU_COLUMN = { z: '', r: 'H4', h: '2u * H4' } as const;
type GruGate = keyof typeof GRU_COLUMN;
const GRU_GATES = Object.keys(GRU_COLUMN) as GruGate[];
/** `` + <column offset>`` of a gate, nothing for z. */
const plusColumn = (g: GruGate): string => (GRU_COLUMN[g] === '' ? '' : ` + ${GRU_COLUMN[g]}`);

/**
 * Unit j's GRU gate sums from their biases, over its group's rows: x · W into az, ar, ah, and h · U into b_ of the
 * `recurrent` gates — all three with reset_after; z and r only without it, whose (r ⊙ h) U_h waits for every r.
 */
function gruGateSums(groups: readonly ShaderCellGroup[], recurrent: readonly GruGate[]): string {
  const declarations = [...GRU_GATES.map((g) => `a${g}`), ...recurrent.map((g) => `b${g}`)]
    .map((v) => `\n      var ${v}: vec4<f32>;`)
    .join('');
  const biases = (sum: string, bias: string, of: readonly GruGate[]) =>
    of.map((g) => `\n      ${sum}${g} = vec4<f32>(weights[${bias}${plusColumn(g)} + j]);`).join('');
  const terms = (sum: string, of: readonly GruGate[]) =>
    of.map((g) => `\n        ${sum}${g} = ${sum}${g} + v * weights[w${plusColumn(g)}];`).join('');
  return `${declarations}${byGroup(
    groups,
    (g) =>
      `${biases('a', 'INPUT_BIAS', GRU_GATES)}${loopsOver(
        g.inputRanges,
        `
        let v = cell[k];
        let w = KERNEL + k * G + j;${terms('a', GRU_GATES)}`,
      )}${biases('b', 'RECURRENT_BIAS', recurrent)}${loopsOver(
        [hiddenRange(g)],
        `
        let v = cell[KC + k];
        let w = RECURRENT + k * G + j;${terms('b', recurrent)}`,
      )}`,
  )}`;
}

/**
 * The one buffer a step uploads, as u32 words: [rows in this step, 3 unused | slot of each row (bit 31 = start
 * from zeros) | x of each row (f32 bits)]. Offsets in words.
 */
export interface InputLayout {
  readonly slots: number;
  readonly x: number;
  /** Words in the whole buffer. */
  readonly words: number;
}

export const inputLayout = (rows: number, inputs: number): InputLayout => {
  const x = 4 + Math.ceil(rows / 4) * 4;
  return { slots: 4, x, words: x + rows * inputs };
};

const u = (n: number): string => `${n}u`;

/**
 * WGSL for one fused model step, generated for one model so every size is a constant. It mirrors the CPU kernel
 * (fused-kernel.ts + simd-kernels.ts) loop for loop, on the same packed weights (packed-weights.ts):
 *
 * - a workgroup takes a block of 4 rows (the CPU's 4-row gemm block); each vec4 holds one value of those 4 rows,
 *   so `acc += v * w` is the CPU's 4 rows × one column term;
 * - phase 1, like `normalize` + `encode` + `fillMaskAndState`: normalized inputs through each encoder (bias first,
 *   then k in order, ReLU), the normalized mask, and the previous h from the state table into workgroup memory
 *   laid out k-major ([k] → 4 rows), i.e. the CPU's cell-input rows transposed;
 * - phase 2, like `gru`/`lstm` + `gruGates`/`lstmGates`: thread j owns hidden unit j, accumulates its gate columns
 *   g·H4 + j of x·W (+ h·U for the GRU, which keeps them apart for reset_after; the LSTM walks [x | h] against the
 *   stacked [W; U]) from the bias in k order, applies the gate math and writes h (and c) to the state table;
 * - phase 3, like `applyHead`: head logits from the new h, then sigmoid or softmax per row.
 *
 * The recurrent state lives in a GPU table of slots (one per stream); a step reads and writes only its rows'
 * slots (a row flagged fresh reads zeros instead), and only the scores are read back. The rows' count, slots and
 * inputs arrive in one buffer ({@link inputLayout}), so a step is one upload, one dispatch and one read-back;
 * workgroup barriers separate the phases.
 */
export function stepShader(p: PackedWeights, shape: ShaderShape): string {
  const d = p.dims;
  const o = p.offsets;
  const cell = wholeCellGroup(p);
  const WG = shape.workgroupSize;
  const io = inputLayout(shape.rows, d.input);
  const perThread = Math.ceil(d.hidden / WG);
  const groups = shape.groups ?? [{ hiddenStart: 0, hidden: d.hidden, inputRanges: [[0, d.cellInput]] }];
  const encoders = cell.encoders
    .map(
      (e) => `
  // Encoder ${e.modality}: ${e.inputs} inputs -> ${e.units} units, ReLU.
  for (var u = tid; u < ${u(e.units)}; u += WG) {
    var acc = vec4<f32>(weights[${u(e.bias)} + u]);
    for (var k = 0u; k < ${u(e.inputs)}; k++) {
      acc = acc + normalized(row0, ${u(e.inputOffset)} + k) * weights[${u(e.kernel)} + k * ${u(e.cols)} + u];
    }
    cell[${u(e.outputOffset)} + u] = max(acc, vec4<f32>(0.0));
  }`,
    )
    .join('\n');

  const gru = `${gruGateSums(groups, ['z', 'r', 'h'])}
      let z = sigmoid4(az + bz);
      let r = sigmoid4(ar + br);
      let c = tanh4(ah + r * bh);
      let h = z * cell[KC + j] + (vec4<f32>(1.0) - z) * c;
      hLocal[i] = h;
      for (var a = 0u; a < ROWS; a++) {
        if (row0 + a < rows) {
          state[slot[a] * S + j] = h[a];
        }
      }`;

  // The LSTM's packed rows are [x | h]: a group's state rows follow the cell input.
  const lstm = `
      var ai: vec4<f32>;
      var af: vec4<f32>;
      var ag: vec4<f32>;
      var ao: vec4<f32>;${byGroup(
        groups,
        (g) => `
      ai = vec4<f32>(weights[INPUT_BIAS + j]);
      af = vec4<f32>(weights[INPUT_BIAS + H4 + j]);
      ag = vec4<f32>(weights[INPUT_BIAS + 2u * H4 + j]);
      ao = vec4<f32>(weights[INPUT_BIAS + 3u * H4 + j]);${loopsOver(
        [...g.inputRanges, hiddenRange(g).map((r) => d.cellInput + r) as [number, number]],
        `
        let v = cell[k];
        let w = KERNEL + k * G + j;
        ai = ai + v * weights[w];
        af = af + v * weights[w + H4];
        ag = ag + v * weights[w + 2u * H4];
        ao = ao + v * weights[w + 3u * H4];`,
      )}`,
      )}
      var cPrev = vec4<f32>(0.0);
      for (var a = 0u; a < ROWS; a++) {
        if (!fresh[a]) {
          cPrev[a] = state[slot[a] * S + H + j];
        }
      }
      let c = sigmoid4(af) * cPrev + sigmoid4(ai) * tanh4(ag);
      let h = sigmoid4(ao) * tanh4(c);
      hLocal[i] = h;
      for (var a = 0u; a < ROWS; a++) {
        if (row0 + a < rows) {
          state[slot[a] * S + j] = h[a];
          state[slot[a] * S + H + j] = c[a];
        }
      }`;

  const activation = p.softmax
    ? `
    var m = logits[0][a];
    for (var l = 1u; l < L; l++) { m = max(m, logits[l][a]); }
    var sum = 0.0;
    for (var l = 0u; l < L; l++) { sum = sum + exp(logits[l][a] - m); }
    for (var l = 0u; l < L; l++) { y[row * L + l] = exp(logits[l][a] - m) / sum; }`
    : `
    for (var l = 0u; l < L; l++) { y[row * L + l] = sigmoid(logits[l][a]); }`;

  return `// Generated by src/model/webgpu-wgsl.ts for a ${p.isGru ? (p.resetAfter ? 'GRU' : 'GRU (reset before)') : 'LSTM'}${p.fusedEncoder ? ` (fused encoder: ${p.offsets.dense.map((l) => `${l.units} ${l.activation}`).join(', ') || 'none'})` : ''} with F=${d.input}, cell input ${d.cellInput}, H=${d.hidden}, ${d.labels} ${p.softmax ? 'softmax' : 'sigmoid'} labels.
const WG: u32 = ${u(WG)};
const ROWS: u32 = ${u(GPU_ROW_BLOCK)};
const PER_THREAD: u32 = ${u(perThread)};
const F: u32 = ${u(d.input)};
const KC: u32 = ${u(d.cellInput)};
const CELL_ROWS: u32 = ${u(cell.cellRows)};
const H: u32 = ${u(d.hidden)};
const H4: u32 = ${u(p.h4)};
const G: u32 = ${u(cell.gateCols)};
const S: u32 = ${u(d.state)};
const L: u32 = ${u(d.labels)};
const LC: u32 = ${u(p.labelCols)};
const MASK: u32 = ${u(d.maskOffset)};
const MEAN: u32 = ${u(o.mean)};
const STD: u32 = ${u(o.std)};
const KERNEL: u32 = ${u(cell.kernel)};
const INPUT_BIAS: u32 = ${u(cell.inputBias)};
const RECURRENT: u32 = ${u(Math.max(0, cell.recurrent))};
const RECURRENT_BIAS: u32 = ${u(Math.max(0, cell.recurrentBias))};
const HEAD_KERNEL: u32 = ${u(o.headKernel)};
const HEAD_BIAS: u32 = ${u(o.headBias)};
const SLOTS: u32 = ${u(io.slots)};
const X: u32 = ${u(io.x)};
const LAST_SLOT: u32 = ${u(shape.slots - 1)};
const FRESH: u32 = 0x80000000u;${
    p.isGru && !p.resetAfter
      ? `
const RECURRENT_CANDIDATE: u32 = ${u(cell.recurrentCandidate)};
const CC: u32 = ${u(cell.candidateCols)};`
      : ''
  }

// [rows, 3 unused | slot per row, bit 31 = start from zeros | x per row as f32 bits]: the step's one upload.
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// The 4 rows' cell input, k-major: [encoders | mask | h]; after phase 2 the h part holds the new h.
var<workgroup> cell: array<vec4<f32>, ${d.cellInput + d.hidden}>;
var<workgroup> logits: array<vec4<f32>, ${d.labels}>;${variantWorkgroupArrays(p)}

// (x - mean) / std for input k of the 4 rows. Rows past the batch read stale but valid buffer rows; their results
// are never written out (the CPU kernel computes its padding rows the same way).
fn xAt(row: u32, k: u32) -> f32 {
  return bitcast<f32>(input[X + row * F + k]);
}

fn normalized(row0: u32, k: u32) -> vec4<f32> {
  let v = vec4<f32>(xAt(row0, k), xAt(row0 + 1u, k), xAt(row0 + 2u, k), xAt(row0 + 3u, k));
  return (v - vec4<f32>(weights[MEAN + k])) / vec4<f32>(weights[STD + k]);
}

// Clamped like the CPU's vector exp, so no backend's exp or tanh overflows to inf or NaN.
fn sigmoid(v: f32) -> f32 {
  return 1.0 / (1.0 + exp(-clamp(v, -87.0, 87.0)));
}

fn sigmoid4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(1.0) / (vec4<f32>(1.0) + exp(-clamp(v, vec4<f32>(-87.0), vec4<f32>(87.0))));
}

fn tanh4(v: vec4<f32>) -> vec4<f32> {
  return tanh(clamp(v, vec4<f32>(-15.0), vec4<f32>(15.0)));
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row0 = group.x * ROWS;
  let rows = input[0];
  // Rows past the batch read whatever slot number an earlier step left; clamped, it stays inside the table.
  var slot: array<u32, 4>;
  var fresh: array<bool, 4>;
  for (var a = 0u; a < ROWS; a++) {
    let s = input[SLOTS + row0 + a];
    slot[a] = min(s & ~FRESH, LAST_SLOT);
    fresh[a] = (s & FRESH) != 0u;
  }

  // Phase 1: encoders, mask and the previous h into workgroup memory.
${
  p.fusedEncoder
    ? fusedEncoderPhase(p)
    : `${encoders}
  for (var m = tid; m < 3u; m += WG) {
    cell[KC - 3u + m] = normalized(row0, MASK + m);
  }`
}
  for (var j = tid; j < H; j += WG) {
    var h = vec4<f32>(0.0);
    for (var a = 0u; a < ROWS; a++) {
      if (!fresh[a]) {
        h[a] = state[slot[a] * S + j];
      }
    }
    cell[KC + j] = h;
  }
  workgroupBarrier();

  // Phase 2: thread tid owns hidden units tid, tid + WG, ...
  var hLocal: array<vec4<f32>, PER_THREAD>;${
    p.isGru && !p.resetAfter
      ? gruResetBeforePhase(groups)
      : `
  for (var i = 0u; i < PER_THREAD; i++) {
    let j = tid + i * WG;
    if (j < H) {${p.isGru ? gru : lstm}
    }
  }`
  }
  workgroupBarrier();
  for (var i = 0u; i < PER_THREAD; i++) {
    let j = tid + i * WG;
    if (j < H) {
      cell[KC + j] = hLocal[i];
    }
  }
  workgroupBarrier();

  // Phase 3: head.
  for (var l = tid; l < L; l += WG) {
    var acc = vec4<f32>(weights[HEAD_BIAS + l]);
    for (var k = 0u; k < H; k++) {
      acc = acc + cell[KC + k] * weights[HEAD_KERNEL + k * LC + l];
    }
    logits[l] = acc;
  }
  workgroupBarrier();
  for (var a = tid; a < ROWS; a += WG) {
    let row = row0 + a;
    if (row < rows) {${activation}
    }
  }
}
`;
}

/** Workgroup memory the shader declares, in bytes (checked against the device's limit). */
export const workgroupBytes = (p: PackedWeights): number =>
  (p.dims.cellInput + p.dims.hidden + p.dims.labels + variantWorkgroupVectors(p)) * 16;

// ---------------------------------------------------------------------------------------------------------------
// Variants for imported Keras models (src/interop): a fused encoder (dense layers over the whole normalized input,
// config.fusedEncoder) and a GRU without reset_after. A model without them generates the shader above unchanged.
// They mirror FusedStepKernel.encodeFused and the reset-before branch of FusedStepKernel.gru.
// ---------------------------------------------------------------------------------------------------------------

/** vec4 entries of workgroup memory the variants add: two ping-pong buffers between dense layers, and r ⊙ h. */
function variantWorkgroupVectors(p: PackedWeights): number {
  const hidden = p.offsets.dense.slice(0, -1).map((layer) => layer.units);
  const pingPong = hidden.length === 0 ? 0 : Math.max(...hidden) * Math.min(2, hidden.length);
  return pingPong + (p.isGru && !p.resetAfter ? p.dims.hidden : 0);
}

function variantWorkgroupArrays(p: PackedWeights): string {
  const hidden = p.offsets.dense.slice(0, -1).map((layer) => layer.units);
  const widest = Math.max(0, ...hidden);
  let out = '';
  if (hidden.length > 0)
    out += `\n// Fused encoder: outputs of its layers but the last, k-major, alternating.\nvar<workgroup> dense0: array<vec4<f32>, ${widest}>;`;
  if (hidden.length > 1) out += `\nvar<workgroup> dense1: array<vec4<f32>, ${widest}>;`;
  if (p.isGru && !p.resetAfter)
    out += `\n// GRU without reset_after: r ⊙ h of the 4 rows, k-major.\nvar<workgroup> resetHidden: array<vec4<f32>, ${p.dims.hidden}>;`;
  return out;
}

const ACTIVATION_WGSL = {
  linear: (v: string) => v,
  relu: (v: string) => `max(${v}, vec4<f32>(0.0))`,
  tanh: (v: string) => `tanh4(${v})`,
  sigmoid: (v: string) => `sigmoid4(${v})`,
} as const;

/** Phase 1 for a fused encoder: its layers in order (a barrier after each but the last), or x' as the cell input. */
function fusedEncoderPhase(p: PackedWeights): string {
  const layers = p.offsets.dense;
  if (layers.length === 0)
    return `
  // No encoder layers: the cell reads the normalized input.
  for (var k = tid; k < F; k += WG) {
    cell[k] = normalized(row0, k);
  }`;
  return layers
    .map((layer, i) => {
      const source = i === 0 ? 'normalized(row0, k)' : `dense${(i - 1) % 2}[k]`;
      const target = i === layers.length - 1 ? 'cell' : `dense${i % 2}`;
      return `
  // Fused encoder layer ${i}: ${layer.inputs} inputs -> ${layer.units} units, ${layer.activation}.
  for (var u = tid; u < ${u(layer.units)}; u += WG) {
    var acc = vec4<f32>(weights[${u(layer.bias)} + u]);
    for (var k = 0u; k < ${u(layer.inputs)}; k++) {
      acc = acc + ${source} * weights[${u(layer.kernel)} + k * ${u(layer.cols)} + u];
    }
    ${target}[u] = ${ACTIVATION_WGSL[layer.activation]('acc')};
  }${i === layers.length - 1 ? '' : '\n  workgroupBarrier();'}`;
    })
    .join('\n');
}

/**
 * Phase 2 for a GRU without reset_after: z, r and the candidate's x part per unit, r ⊙ h into workgroup memory, a
 * barrier (every unit's candidate needs all of r ⊙ h), then the candidate's recurrent product and the update.
 */
function gruResetBeforePhase(groups: readonly ShaderCellGroup[]): string {
  return `
  var zLocal: array<vec4<f32>, PER_THREAD>;
  var xhLocal: array<vec4<f32>, PER_THREAD>;
  for (var i = 0u; i < PER_THREAD; i++) {
    let j = tid + i * WG;
    if (j < H) {${gruGateSums(groups, ['z', 'r'])}
      zLocal[i] = sigmoid4(az + bz);
      xhLocal[i] = ah;
      resetHidden[j] = sigmoid4(ar + br) * cell[KC + j];
    }
  }
  workgroupBarrier();
  for (var i = 0u; i < PER_THREAD; i++) {
    let j = tid + i * WG;
    if (j < H) {
      var bh: vec4<f32>;${byGroup(
        groups,
        (g) => `
      bh = vec4<f32>(weights[RECURRENT_BIAS + 2u * H4 + j]);${loopsOver(
        [hiddenRange(g)],
        `
        bh = bh + resetHidden[k] * weights[RECURRENT_CANDIDATE + k * CC + j];`,
      )}`,
      )}
      let z = zLocal[i];
      let c = tanh4(xhLocal[i] + bh);
      let h = z * cell[KC + j] + (vec4<f32>(1.0) - z) * c;
      hLocal[i] = h;
      for (var a = 0u; a < ROWS; a++) {
        if (row0 + a < rows) {
          state[slot[a] * S + j] = h[a];
        }
      }
    }
  }`;
}
