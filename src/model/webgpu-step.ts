/// <reference types="@webgpu/types" />
import { BraidError } from '../core/errors.js';
import { cellGroups } from './cell-groups.js';
import type { ModelDims } from './config.js';
import { type PackedWeights, packWeights, roundUp } from './packed-weights.js';
import { checkSlotStepArgs, GpuStepError, type GpuStepFailure, type SlotStepKernel } from './slot-kernel.js';
import { MAX_SLOTS, type StateSlots } from './state-slots.js';
import type { BackendName } from './step-kernel.js';
import {
  GPU_ROW_BLOCK,
  type InputLayout,
  inputLayout,
  shaderCellGroups,
  stepShader,
  workgroupBytes,
} from './webgpu-wgsl.js';
import type { Model } from './weights.js';

/**
 * The `webgpu` backend: the fused GRU/LSTM step as one WGSL compute dispatch on a WebGPU device (WGSL from
 * webgpu-wgsl.ts). Checked against the CPU kernel on SwiftShader's Vulkan in the tests; not yet measured on a GPU.
 *
 * Weights stay resident in one storage buffer (the CPU kernel's packed layout); the recurrent state of every
 * stream stays on the GPU in a table of `maxStreams` slots between steps. A step is one upload (the rows' count,
 * slots and inputs in one buffer), one dispatch and one read-back of the scores, inside error scopes.
 *
 * With Dawn for Node (npm "webgpu"), keep the GPU object from `create()` referenced while its devices are in use:
 * when it is garbage-collected Dawn tears the devices down and the process aborts (`owner` below does it).
 */

// WebGPU constants (spec values), spelled out: in Node the GPUBufferUsage/GPUMapMode globals exist only if set up.
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, STORAGE: 0x80 } as const;
const MAP_READ = 0x1;
const DEFAULT_WORKGROUP = 128;

/** Typed arrays over plain ArrayBuffers, as writeBuffer's types want (offsets stay in elements). */
const bytesOf = <T extends Float32Array | Uint32Array>(a: T): T & { buffer: ArrayBuffer } =>
  a as T & { buffer: ArrayBuffer };

export interface WebGpuStepOptions {
  /** Most rows in one step. */
  readonly maxBatch: number;
  /** Slots in the GPU state table: streams that can hold state at once (≥ maxBatch). */
  readonly maxStreams: number;
  /** Threads per workgroup (default 128). */
  readonly workgroupSize?: number;
  /**
   * When the step owns its device: kept referenced for the step's life (Dawn's GPU object), and the device is
   * destroyed with the step.
   */
  readonly owner?: { readonly gpu: unknown };
}

const fail = (message: string): never => {
  throw new BraidError('BRAID_ERR_MODEL', `webgpu step: ${message}`);
};

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** A buffer the step makes, with what it holds, for the limit messages. */
interface BufferPlan {
  readonly what: string;
  readonly bytes: number;
  readonly bound: boolean;
}

/**
 * Refuses, naming the device limit and the value, a step this device cannot hold: workgroup size and memory,
 * dispatch size, and every buffer against maxBufferSize (and maxStorageBufferBindingSize when bound). Run by
 * {@link WebGpuStep.create} before anything is allocated.
 */
export function checkStepLimits(
  limits: Pick<
    GPUSupportedLimits,
    | 'maxComputeInvocationsPerWorkgroup'
    | 'maxComputeWorkgroupSizeX'
    | 'maxComputeWorkgroupStorageSize'
    | 'maxComputeWorkgroupsPerDimension'
    | 'maxStorageBuffersPerShaderStage'
    | 'maxStorageBufferBindingSize'
    | 'maxBufferSize'
  >,
  packed: PackedWeights,
  options: WebGpuStepOptions,
): void {
  const wg = options.workgroupSize ?? DEFAULT_WORKGROUP;
  const { maxBatch, maxStreams } = options;
  if (!Number.isInteger(wg) || wg < 1) fail(`workgroupSize must be an integer ≥ 1, got ${wg}`);
  if (wg > limits.maxComputeInvocationsPerWorkgroup)
    fail(
      `workgroupSize ${wg} exceeds the device's maxComputeInvocationsPerWorkgroup of ${limits.maxComputeInvocationsPerWorkgroup}`,
    );
  if (wg > limits.maxComputeWorkgroupSizeX)
    fail(
      `workgroupSize ${wg} exceeds the device's maxComputeWorkgroupSizeX of ${limits.maxComputeWorkgroupSizeX}`,
    );
  const shared = workgroupBytes(packed);
  if (shared > limits.maxComputeWorkgroupStorageSize)
    fail(
      `the model needs ${shared} bytes of workgroup memory, over the device's maxComputeWorkgroupStorageSize of ${limits.maxComputeWorkgroupStorageSize}`,
    );
  if (!Number.isInteger(maxBatch) || maxBatch < 1) fail(`maxBatch must be an integer ≥ 1, got ${maxBatch}`);
  const groups = Math.ceil(maxBatch / GPU_ROW_BLOCK);
  if (groups > limits.maxComputeWorkgroupsPerDimension)
    fail(
      `maxBatch ${maxBatch} needs ${groups} workgroups, over the device's maxComputeWorkgroupsPerDimension of ${limits.maxComputeWorkgroupsPerDimension}`,
    );
  if (!Number.isInteger(maxStreams) || maxStreams < maxBatch || maxStreams > MAX_SLOTS)
    fail(
      `maxStreams must be an integer from maxBatch (${maxBatch}) to ${MAX_SLOTS}, got ${maxStreams}: every row of a step needs its own slot`,
    );
  if (limits.maxStorageBuffersPerShaderStage < 4)
    fail(
      `the step binds 4 storage buffers, over the device's maxStorageBuffersPerShaderStage of ${limits.maxStorageBuffersPerShaderStage}`,
    );
  for (const b of bufferPlan(packed, options)) {
    if (b.bound && b.bytes > limits.maxStorageBufferBindingSize)
      fail(
        `${b.what} needs ${b.bytes} bytes, over the device's maxStorageBufferBindingSize of ${limits.maxStorageBufferBindingSize}`,
      );
    if (b.bytes > limits.maxBufferSize)
      fail(`${b.what} needs ${b.bytes} bytes, over the device's maxBufferSize of ${limits.maxBufferSize}`);
  }
}

const bufferBytes = (bytes: number): number => roundUp(Math.max(bytes, 16), 16);

function bufferPlan(packed: PackedWeights, options: WebGpuStepOptions): BufferPlan[] {
  const { input: F, state: S, labels: L } = packed.dims;
  const rows = roundUp(options.maxBatch, GPU_ROW_BLOCK);
  return [
    { what: 'the weights', bytes: bufferBytes(packed.data.byteLength), bound: true },
    {
      what: `the input buffer (maxBatch ${options.maxBatch} rows × ${F} inputs, and their slots)`,
      bytes: bufferBytes(inputLayout(rows, F).words * 4),
      bound: true,
    },
    {
      what: `the state table (maxStreams ${options.maxStreams} × ${S} floats)`,
      bytes: bufferBytes(options.maxStreams * S * 4),
      bound: true,
    },
    {
      what: `the scores (maxBatch ${options.maxBatch} rows × ${L} labels)`,
      bytes: bufferBytes(rows * L * 4),
      bound: true,
    },
    { what: 'the read-back buffer', bytes: bufferBytes(rows * L * 4), bound: false },
  ];
}

export class WebGpuStep implements SlotStepKernel {
  readonly backend: BackendName = 'webgpu';
  readonly device = 'gpu' as const;
  readonly dims: ModelDims;
  readonly maxBatch: number;
  readonly maxStreams: number;
  readonly workgroupSize: number;
  readonly states: StateSlots;
  /** Resolves with the reason if the device is lost or destroyed while the step is in use (not by dispose). */
  readonly lost: Promise<string>;
  private readonly io: InputLayout;
  private readonly buffers: GPUBuffer[] = [];
  private readonly input: GPUBuffer;
  private readonly state: GPUBuffer;
  private readonly y: GPUBuffer;
  private readonly readback: GPUBuffer;
  private readonly pipeline: GPUComputePipeline;
  private readonly bindGroup: GPUBindGroup;
  /** The one upload: [header | slots | x], x written through a float view of the same memory. */
  private readonly upload: Uint32Array;
  private readonly uploadX: Float32Array;
  private readonly seenSlots = new Set<number>();
  private readonly owner: { readonly gpu: unknown } | undefined;
  private lostReason: string | undefined;
  private disposed = false;
  private busy = false;

  private constructor(
    readonly gpuDevice: GPUDevice,
    p: PackedWeights,
    options: WebGpuStepOptions,
    shader: GPUShaderModule,
  ) {
    this.dims = p.dims;
    this.maxBatch = options.maxBatch;
    this.maxStreams = options.maxStreams;
    this.workgroupSize = options.workgroupSize ?? DEFAULT_WORKGROUP;
    this.owner = options.owner;
    const rows = roundUp(options.maxBatch, GPU_ROW_BLOCK);
    this.io = inputLayout(rows, p.dims.input);
    this.upload = new Uint32Array(this.io.words);
    this.uploadX = new Float32Array(this.upload.buffer);
    const { state: S } = this.dims;
    const [weightsPlan, inputPlan, statePlan, yPlan, readbackPlan] = bufferPlan(p, options) as [
      BufferPlan,
      BufferPlan,
      BufferPlan,
      BufferPlan,
      BufferPlan,
    ];
    const buffer = (plan: BufferPlan, usage: number): GPUBuffer => {
      const b = gpuDevice.createBuffer({ size: plan.bytes, usage });
      this.buffers.push(b);
      return b;
    };
    // Most WebGPU mistakes surface in the error scope, but a call can also throw (a size no integer holds): then the
    // buffers made so far would outlive the object that was never returned.
    try {
      const weights = buffer(weightsPlan, USAGE.STORAGE | USAGE.COPY_DST);
      gpuDevice.queue.writeBuffer(weights, 0, bytesOf(p.data));
      this.input = buffer(inputPlan, USAGE.STORAGE | USAGE.COPY_DST);
      // Its contents never matter before a slot's first step: a new stream's first row is flagged fresh.
      this.state = buffer(statePlan, USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC);
      this.y = buffer(yPlan, USAGE.STORAGE | USAGE.COPY_SRC);
      this.readback = buffer(readbackPlan, USAGE.MAP_READ | USAGE.COPY_DST);
      this.pipeline = gpuDevice.createComputePipeline({
        layout: 'auto',
        compute: { module: shader, entryPoint: 'main' },
      });
      this.bindGroup = gpuDevice.createBindGroup({
        layout: this.pipeline.getBindGroupLayout(0),
        entries: [this.input, weights, this.state, this.y].map((b, binding) => ({
          binding,
          resource: { buffer: b },
        })),
      });
    } catch (error) {
      this.dispose();
      throw error;
    }
    const device = gpuDevice;
    this.lost = new Promise<string>((resolve) => {
      void device.lost.then((info) => {
        if (this.disposed) return;
        this.lostReason = `${info.reason}: ${info.message || 'no message'}`;
        resolve(this.lostReason);
      });
    });
    this.states = {
      stateSize: S,
      capacity: options.maxStreams,
      write: (slots, states) => this.writeStates(slots, states),
      read: (slots) => this.readStates(slots),
    };
  }

  /**
   * Checks the device's limits, compiles the model's shader and uploads its weights. Throws BRAID_ERR_MODEL naming
   * the limit and the value a model or option exceeds, or with the compiler's or the validation layer's messages.
   */
  static async create(device: GPUDevice, model: Model, options: WebGpuStepOptions): Promise<WebGpuStep> {
    const packed = packWeights(model);
    const groups = cellGroups(model);
    checkStepLimits(device.limits, packed, options);
    const workgroupSize = options.workgroupSize ?? DEFAULT_WORKGROUP;
    const rows = roundUp(options.maxBatch, GPU_ROW_BLOCK);
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let step: WebGpuStep;
    try {
      const shader = device.createShaderModule({
        code: stepShader(packed, {
          workgroupSize,
          rows,
          slots: options.maxStreams,
          // An ensemble's members apart: each unit's gates skip the other members' zero blocks.
          ...(groups.length > 1 && { groups: shaderCellGroups(groups, packed.dims) }),
        }),
      });
      const info = await shader.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length > 0)
        fail(
          `WGSL does not compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`,
        );
      step = new WebGpuStep(device, packed, options, shader);
    } catch (thrown) {
      // Leave the device's error scopes as they were: a scope left pushed would swallow the caller's errors.
      const popped = [await device.popErrorScope(), await device.popErrorScope()];
      const scoped = popped.find((e) => e !== null);
      if (thrown instanceof BraidError) throw thrown;
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `webgpu step: cannot build the step: ${errorText(thrown)}${scoped ? ` (validation: ${scoped.message})` : ''}`,
        { cause: thrown },
      );
    }
    const errors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e !== null);
    if (errors.length > 0) {
      step.dispose();
      fail(`pipeline or buffers rejected: ${errors.map((e) => e.message).join('; ')}`);
    }
    return step;
  }

  /**
   * Advances rows 0..n−1: row r's input is x[r·F ..], its state lives in slot `slots[r]` (distinct within a step;
   * {@link FRESH_SLOT} set: start from zeros). Writes the scores to y[r·L ..]. Steps must not overlap. A failure on
   * the GPU rejects with {@link GpuStepError}.
   */
  async step(n: number, x: Float32Array, slots: Uint32Array, y: Float32Array): Promise<void> {
    const { input: F, labels: L } = this.dims;
    checkSlotStepArgs(this, n, x, slots, y, this.seenSlots);
    if (this.busy) fail('step called while a step is running');
    if (this.lostReason)
      throw new GpuStepError('device-lost', false, `the device is lost (${this.lostReason})`);
    this.busy = true;
    const device = this.gpuDevice;
    let mapped = false;
    try {
      this.upload[0] = n;
      this.upload.set(slots.subarray(0, n), this.io.slots);
      this.uploadX.set(x.subarray(0, n * F), this.io.x);
      device.pushErrorScope('internal');
      device.pushErrorScope('out-of-memory');
      device.pushErrorScope('validation');
      device.queue.writeBuffer(this.input, 0, bytesOf(this.upload), 0, this.io.x + n * F);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, this.bindGroup);
      pass.dispatchWorkgroups(Math.ceil(n / GPU_ROW_BLOCK));
      pass.end();
      encoder.copyBufferToBuffer(this.y, 0, this.readback, 0, n * L * 4);
      device.queue.submit([encoder.finish()]);
      const map = this.readback.mapAsync(MAP_READ, 0, n * L * 4).then(() => {
        mapped = true;
      });
      // Popped in the order pushed in reverse; all three settle with the submit.
      const scopes = Promise.all([device.popErrorScope(), device.popErrorScope(), device.popErrorScope()]);
      const [scoped, read] = await Promise.allSettled([scopes, map]);
      const errors = scoped.status === 'fulfilled' ? scoped.value : [];
      const filters: GpuStepFailure[] = ['validation', 'out-of-memory', 'internal'];
      const firstError = errors.findIndex((e) => e !== null);
      if (firstError >= 0) {
        // A submit that fails validation does not run; after an out-of-memory or internal error it may have.
        const failure = filters[firstError] as GpuStepFailure;
        throw new GpuStepError(
          failure,
          failure !== 'validation',
          `${failure} error: ${errors[firstError]?.message}`,
        );
      }
      if (this.lostReason)
        throw new GpuStepError('device-lost', true, `the device was lost (${this.lostReason})`);
      if (read.status === 'rejected')
        throw new GpuStepError(
          'readback',
          true,
          `reading the scores back failed: ${errorText(read.reason)}`,
          {
            cause: read.reason,
          },
        );
      y.set(new Float32Array(this.readback.getMappedRange(0, n * L * 4)));
    } catch (error) {
      if (error instanceof BraidError) throw error;
      // A WebGPU call threw outright (an object used after its device went away...).
      throw new GpuStepError(this.lostReason ? 'device-lost' : 'internal', true, errorText(error), {
        cause: error,
      });
    } finally {
      if (mapped) this.readback.unmap();
      this.busy = false;
    }
  }

  /** Sets the states of some slots (a snapshot's floats to restore them): [slots][S]. */
  writeStates(slots: Uint32Array, states: Float32Array): void {
    const S = this.dims.state;
    if (states.length !== slots.length * S)
      fail(`states need ${slots.length}×${S} floats, got ${states.length}`);
    this.checkSlots(slots);
    // Runs of consecutive slots (a restore writes 0..k−1) go up in one write each.
    for (let i = 0; i < slots.length; ) {
      let j = i + 1;
      while (j < slots.length && slots[j] === (slots[j - 1] as number) + 1) j++;
      this.gpuDevice.queue.writeBuffer(
        this.state,
        (slots[i] as number) * S * 4,
        bytesOf(states),
        i * S,
        (j - i) * S,
      );
      i = j;
    }
  }

  /** Reads the states of some slots back ([slots][S]), after every step queued before the call. */
  async readStates(slots: Uint32Array): Promise<Float32Array> {
    const S = this.dims.state;
    this.checkSlots(slots);
    if (slots.length === 0) return new Float32Array(0);
    if (this.lostReason) fail(`cannot read states back: the device is lost (${this.lostReason})`);
    const staging = this.gpuDevice.createBuffer({
      size: slots.length * S * 4,
      usage: USAGE.MAP_READ | USAGE.COPY_DST,
    });
    try {
      const encoder = this.gpuDevice.createCommandEncoder();
      for (let i = 0; i < slots.length; i++)
        encoder.copyBufferToBuffer(this.state, (slots[i] as number) * S * 4, staging, i * S * 4, S * 4);
      this.gpuDevice.queue.submit([encoder.finish()]);
      await staging.mapAsync(MAP_READ);
      const states = new Float32Array(staging.getMappedRange()).slice();
      staging.unmap();
      return states;
    } finally {
      staging.destroy();
    }
  }

  dispose(): void {
    if (!this.disposed) {
      this.disposed = true;
      for (const b of this.buffers) b.destroy();
      this.buffers.length = 0;
      if (this.owner) this.gpuDevice.destroy();
    }
  }

  private checkSlots(slots: Uint32Array): void {
    for (let i = 0; i < slots.length; i++)
      if ((slots[i] as number) >= this.maxStreams)
        fail(`slot ${slots[i]} is outside the state table of ${this.maxStreams}`);
  }
}
