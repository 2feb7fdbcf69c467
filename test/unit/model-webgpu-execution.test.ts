/// <reference types="@webgpu/types" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkModel,
  checkWebGpuStep,
  IMPORTED_VARIANTS,
  importedShapeModel,
} from '../../bench/webgpu-check.js';
import { BraidError } from '../../src/core/errors.js';
import { cellGroups } from '../../src/model/cell-groups.js';
import {
  identityNormalization,
  type ModelConfig,
  modelDims,
  parseModelConfig,
} from '../../src/model/config.js';
import { ensembleModels } from '../../src/model/ensemble.js';
import { loadModel } from '../../src/model/model-io.js';
import { packWeights } from '../../src/model/packed-weights.js';
import { type OpenedDevice, openWebGpuDevice } from '../../src/model/webgpu-adapter.js';
import { checkStepLimits, WebGpuStep } from '../../src/model/webgpu-step.js';
import { shaderCellGroups, stepShader } from '../../src/model/webgpu-wgsl.js';
import { createModel, type Model, randomWeights } from '../../src/model/weights.js';
import { DEMO_MODEL_DIR } from '../helpers/demo-pipeline.js';
import { useSwiftShader } from '../helpers/swiftshader.js';

/**
 * The WGSL step executed on SwiftShader (software Vulkan), checked against the CPU kernel: the cross-checks of
 * bench/gpu-entry.ts at CI sizes. SwiftShader is slow, so the big shape runs fewer rows and steps.
 */
const ready = await useSwiftShader();
const TOLERANCE = 1e-4;

/** An ensemble (braid ensemble) of members of uneven sizes over all three modalities, one cell kind. */
function ensembleOf(cell: 'gru' | 'lstm', resetAfter: boolean, hidden: readonly number[]): Model {
  const layout = { audio: 7, video: 5, text: 4, mask: 3 as const };
  return ensembleModels(
    hidden.map((h, i) => {
      const config: ModelConfig = parseModelConfig({
        inputLayout: layout,
        encoderUnits: { audio: 3 + i, video: 2, text: 1 + i },
        ...(cell === 'gru' ? { resetAfter } : {}),
        hidden: h,
        cell,
        labels: ['a', 'b', 'c'],
        head: 'sigmoid',
        featureConfig: null,
        normalization: identityNormalization(layout),
      });
      return createModel(config, randomWeights(config, { seed: 11 + i, biasScale: 0.3 }));
    }),
  );
}

describe('the WGSL step of an ensemble', () => {
  it("loops each hidden unit's gates over its own member's cell-input rows and state only", () => {
    const model = ensembleOf('gru', true, [5, 9, 6]);
    const groups = shaderCellGroups(cellGroups(model), modelDims(model.config));
    // Encoders side by side per modality (audio 3+4+5, video 2+2+2, text 1+2+3), then the mask at 24..27.
    expect(groups).toEqual([
      {
        hiddenStart: 0,
        hidden: 5,
        inputRanges: [
          [0, 3],
          [12, 14],
          [18, 19],
          [24, 27],
        ],
      },
      {
        hiddenStart: 5,
        hidden: 9,
        inputRanges: [
          [3, 7],
          [14, 16],
          [19, 21],
          [24, 27],
        ],
      },
      {
        hiddenStart: 14,
        hidden: 6,
        inputRanges: [
          [7, 12],
          [16, 18],
          [21, 27],
        ],
      },
    ]);
    const code = stepShader(packWeights(model), { workgroupSize: 8, rows: 4, slots: 4, groups });
    expect(code).toContain('if (j < 5u) {');
    expect(code).toContain('} else if (j < 14u) {');
    expect(code).toContain('for (var k = 5u; k < 14u; k++) {');
    expect(code).not.toContain('k < KC;');
    // A trained cell is one group over the whole cell input, as the shader's default: no branch.
    const one = checkModel(10, 6, 'gru', 'sigmoid');
    const whole = shaderCellGroups(cellGroups(one), modelDims(one.config));
    expect(whole).toEqual([{ hiddenStart: 0, hidden: 6, inputRanges: [[0, 10]] }]);
    expect(
      stepShader(packWeights(one), { workgroupSize: 8, rows: 4, slots: 4, groups: whole }),
    ).not.toContain('if (j < 6u)');
  });
});

describe.skipIf(!ready)('WGSL step on SwiftShader equals the CPU kernel', () => {
  let opened: OpenedDevice;
  beforeAll(async () => {
    opened = await openWebGpuDevice({ allowSoftware: true });
  });
  afterAll(() => opened?.device.destroy());

  // Every cell with every head on the small shape; each cell once on the big one (SwiftShader compiles a shader
  // per model, ~1 s for (256, 512) on a loaded 2-core machine, so not all four there).
  const cases = [
    [64, 128, 'gru', 'sigmoid', 16, 10],
    [64, 128, 'gru', 'softmax', 16, 10],
    [64, 128, 'lstm', 'sigmoid', 16, 10],
    [64, 128, 'lstm', 'softmax', 16, 10],
    [256, 512, 'gru', 'softmax', 6, 4],
    [256, 512, 'lstm', 'sigmoid', 6, 4],
  ] as const;
  it.each(cases)(
    '(%i, %i) %s %s: %i streams on scattered, reused slots, %i steps',
    async (inputs, hidden, cell, head, streams, steps) => {
      const r = await checkWebGpuStep(opened.device, checkModel(inputs, hidden, cell, head), {
        streams,
        steps,
        seed: inputs + hidden,
      });
      expect(r.scores).toBeLessThan(TOLERANCE);
      expect(r.states).toBeLessThan(TOLERANCE);
      // The run did exercise resets and slot reuse, not only plain steps.
      expect(r.freshRows).toBeGreaterThan(streams);
      expect(r.reusedSlots).toBeGreaterThan(0);
    },
  );

  it.each(IMPORTED_VARIANTS)(
    'the shader variants of imported Keras models (%s, reset_after %s, a fused encoder) compute the same',
    async (cell, resetAfter, fusedEncoder) => {
      const r = await checkWebGpuStep(opened.device, importedShapeModel(cell, resetAfter, fusedEncoder), {
        streams: 9,
        steps: 5,
        seed: 5,
      });
      expect(r.scores).toBeLessThan(TOLERANCE);
      expect(r.states).toBeLessThan(TOLERANCE);
    },
  );

  it.each([1, 2, 3])(
    'workgroups of %i threads (fewer than the 4 rows and 3 mask entries) compute the same',
    async (workgroupSize) => {
      const r = await checkWebGpuStep(opened.device, checkModel(10, 6, 'lstm', 'softmax'), {
        streams: 7,
        steps: 5,
        workgroupSize,
      });
      expect(r.scores).toBeLessThan(TOLERANCE);
      expect(r.states).toBeLessThan(TOLERANCE);
    },
  );

  it.each([
    ['gru', true],
    ['gru', false],
    ['lstm', false],
  ] as const)(
    'an ensemble of uneven members (%s, reset_after %s), member by member',
    async (cell, resetAfter) => {
      const r = await checkWebGpuStep(opened.device, ensembleOf(cell, resetAfter, [5, 9, 6]), {
        streams: 9,
        steps: 6,
        seed: 3,
        workgroupSize: 4,
      });
      expect(r.scores).toBeLessThan(TOLERANCE);
      expect(r.states).toBeLessThan(TOLERANCE);
    },
  );

  it('the bundled demo model', async () => {
    const r = await checkWebGpuStep(opened.device, await loadModel(DEMO_MODEL_DIR), {
      streams: 12,
      steps: 12,
    });
    expect(r.scores).toBeLessThan(TOLERANCE);
    expect(r.states).toBeLessThan(TOLERANCE);
  });

  it('refuses, on the real device, a state table or an input buffer over the binding limit, naming limit and value', async () => {
    const { device } = opened;
    const limit = device.limits.maxStorageBufferBindingSize;
    const model = checkModel(8, 4, 'lstm', 'sigmoid');
    const tooManyStreams = Math.ceil(limit / (8 * 4)) + 1;
    await expect(
      WebGpuStep.create(device, model, { maxBatch: 4, maxStreams: tooManyStreams }),
    ).rejects.toThrow(
      `the state table (maxStreams ${tooManyStreams} × 8 floats) needs ${Math.ceil((tooManyStreams * 32) / 16) * 16} bytes, over the device's maxStorageBufferBindingSize of ${limit}`,
    );
    await expect(
      WebGpuStep.create(device, model, { maxBatch: 4, maxStreams: 4, workgroupSize: 0 }),
    ).rejects.toThrow('workgroupSize must be an integer ≥ 1, got 0');
    await expect(WebGpuStep.create(device, model, { maxBatch: 8, maxStreams: 4 })).rejects.toThrow(
      /maxStreams must be an integer from maxBatch \(8\)/,
    );
  });
});

describe('step limits, named with their values, for every buffer', () => {
  const limits = {
    maxComputeInvocationsPerWorkgroup: 256,
    maxComputeWorkgroupSizeX: 256,
    maxComputeWorkgroupStorageSize: 16384,
    maxComputeWorkgroupsPerDimension: 65535,
    maxStorageBuffersPerShaderStage: 8,
    maxStorageBufferBindingSize: 1 << 20,
    maxBufferSize: 1 << 21,
  };
  const packed = packWeights(checkModel(64, 32, 'gru', 'sigmoid'));
  const refusal = (options: Parameters<typeof checkStepLimits>[2], overrides = {}): string => {
    try {
      checkStepLimits({ ...limits, ...overrides }, packed, options);
    } catch (error) {
      expect(error).toBeInstanceOf(BraidError);
      return (error as Error).message;
    }
    return 'accepted';
  };

  it('accepts what fits', () => {
    expect(refusal({ maxBatch: 256, maxStreams: 1024 })).toBe('accepted');
  });

  it('names the buffer, its size and the limit it exceeds', () => {
    expect(refusal({ maxBatch: 4, maxStreams: 4 }, { maxStorageBufferBindingSize: 1024 })).toMatch(
      /^webgpu step: the weights needs \d+ bytes, over the device's maxStorageBufferBindingSize of 1024$/,
    );
    expect(refusal({ maxBatch: 8192, maxStreams: 8192 })).toMatch(
      /the input buffer \(maxBatch 8192 rows × 64 inputs, and their slots\) needs 2129936 bytes, over the device's maxStorageBufferBindingSize of 1048576/,
    );
    expect(refusal({ maxBatch: 4, maxStreams: 9000 })).toMatch(
      /the state table \(maxStreams 9000 × 32 floats\) needs 1152000 bytes, over the device's maxStorageBufferBindingSize/,
    );
    expect(
      refusal(
        { maxBatch: 8192, maxStreams: 8192 },
        { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 20 },
      ),
    ).toMatch(/the input buffer .* needs 2129936 bytes, over the device's maxBufferSize of 1048576/);
    expect(refusal({ maxBatch: 4, maxStreams: 4 }, { maxStorageBuffersPerShaderStage: 3 })).toMatch(
      /binds 4 storage buffers, over the device's maxStorageBuffersPerShaderStage of 3/,
    );
  });

  it('names the scores buffer when only it is too big (a wide head on few inputs)', () => {
    const layout = { audio: 1, video: 0, text: 0, mask: 3 as const };
    const config = parseModelConfig({
      inputLayout: layout,
      encoderUnits: { audio: 1, video: 0, text: 0 },
      hidden: 4,
      cell: 'gru',
      labels: Array.from({ length: 64 }, (_, i) => `l${i}`),
      head: 'sigmoid',
      featureConfig: null,
      normalization: identityNormalization(layout),
    });
    const wide = packWeights(createModel(config, randomWeights(config)));
    expect(() =>
      checkStepLimits({ ...limits, maxStorageBufferBindingSize: 100_000 }, wide, {
        maxBatch: 1024,
        maxStreams: 1024,
      }),
    ).toThrow(
      "webgpu step: the scores (maxBatch 1024 rows × 64 labels) needs 262144 bytes, over the device's maxStorageBufferBindingSize of 100000",
    );
  });

  it('refuses workgroups the device cannot run', () => {
    expect(refusal({ maxBatch: 4, maxStreams: 4, workgroupSize: 512 })).toBe(
      "webgpu step: workgroupSize 512 exceeds the device's maxComputeInvocationsPerWorkgroup of 256",
    );
    expect(refusal({ maxBatch: 4, maxStreams: 4, workgroupSize: 2.5 })).toBe(
      'webgpu step: workgroupSize must be an integer ≥ 1, got 2.5',
    );
    expect(refusal({ maxBatch: 4, maxStreams: 4 }, { maxComputeWorkgroupStorageSize: 1000 })).toMatch(
      /needs \d+ bytes of workgroup memory, over the device's maxComputeWorkgroupStorageSize of 1000/,
    );
  });
});
