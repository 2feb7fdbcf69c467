/// <reference types="@webgpu/types" />
import { BraidError } from '../core/errors.js';
import type { ModelDims } from './config.js';
import { type PackedWeights, packWeights, roundUp } from './packed-weights.js';
import { GPU_ROW_BLOCK, stepShader, workgroupBytes } from './webgpu-wgsl.js';
import type { Model } from './weights.js';

/**
 * The fused GRU/LSTM step as one WGSL compute dispatch on a WebGPU device (issue #6). NOT YET RUN ON A GPU: it is
 * compiled and validated on Dawn's null backend in the tests; bench/gpu-entry.ts checks it against the CPU
 * kernel and times it on a machine with a GPU.
 *
 * Weights stay resident in one storage buffer (the CPU kernel's packed layout); the recurrent state of every
 * stream stays on the GPU in a table of `maxStreams` slots between steps; a step uploads the rows' inputs and
 * slot numbers, runs one dispatch and reads back only the scores.
 *
 * With Dawn for Node (npm "webgpu"), keep the GPU object from `create()` referenced while its devices are in use:
 * when it is garbage-collected Dawn tears the devices down and the process aborts.
 */

// WebGPU constants (spec values), spelled out: in Node the GPUBufferUsage/GPUMapMode globals exist only if set up.
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
const MAP_READ = 0x1;

/** Typed arrays over plain ArrayBuffers, as writeBuffer's types want (offsets stay in elements). */
const bytesOf = <T extends Float32Array | Uint32Array>(a: T): T & { buffer: ArrayBuffer } =>
  a as T & { buffer: ArrayBuffer };

export interface WebGpuStepOptions {
  /** Most rows in one step. */
  readonly maxBatch: number;
  /** Slots in the GPU state table: streams that can hold state at once. */
  readonly maxStreams: number;
  /** Threads per workgroup (default 128). */
  readonly workgroupSize?: number;
}

const fail = (message: string): never => {
  throw new BraidError('BRAID_ERR_MODEL', `webgpu step: ${message}`);
};

export class WebGpuStep {
  readonly dims: ModelDims;
  readonly maxBatch: number;
  readonly maxStreams: number;
  private readonly rows: number;
  private readonly buffers: GPUBuffer[] = [];
  private readonly params: GPUBuffer;
  private readonly x: GPUBuffer;
  private readonly slots: GPUBuffer;
  private readonly state: GPUBuffer;
  private readonly y: GPUBuffer;
  private readonly readback: GPUBuffer;
  private readonly pipeline: GPUComputePipeline;
  private readonly bindGroup: GPUBindGroup;
  private readonly paramData = new Uint32Array(4);
  private readonly seenSlots = new Set<number>();
  private busy = false;

  private constructor(
    private readonly device: GPUDevice,
    p: PackedWeights,
    options: WebGpuStepOptions,
    shader: GPUShaderModule,
  ) {
    this.dims = p.dims;
    this.maxBatch = options.maxBatch;
    this.maxStreams = options.maxStreams;
    this.rows = roundUp(options.maxBatch, GPU_ROW_BLOCK);
    const { input: F, state: S, labels: L } = this.dims;
    const buffer = (bytes: number, usage: number): GPUBuffer => {
      const b = device.createBuffer({ size: roundUp(Math.max(bytes, 16), 16), usage });
      this.buffers.push(b);
      return b;
    };
    // Most WebGPU mistakes surface in the error scope, but a call can also throw (a size no integer holds): then the
    // buffers made so far would outlive the object that was never returned.
    try {
      const weights = buffer(p.data.byteLength, USAGE.STORAGE | USAGE.COPY_DST);
      device.queue.writeBuffer(weights, 0, bytesOf(p.data));
      this.params = buffer(16, USAGE.UNIFORM | USAGE.COPY_DST);
      this.x = buffer(this.rows * F * 4, USAGE.STORAGE | USAGE.COPY_DST);
      this.slots = buffer(this.rows * 4, USAGE.STORAGE | USAGE.COPY_DST);
      // Created zeroed (WebGPU guarantees it): every slot starts as a fresh stream.
      this.state = buffer(options.maxStreams * S * 4, USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC);
      this.y = buffer(this.rows * L * 4, USAGE.STORAGE | USAGE.COPY_SRC);
      this.readback = buffer(this.rows * L * 4, USAGE.MAP_READ | USAGE.COPY_DST);
      this.pipeline = device.createComputePipeline({
        layout: 'auto',
        compute: { module: shader, entryPoint: 'main' },
      });
      this.bindGroup = device.createBindGroup({
        layout: this.pipeline.getBindGroupLayout(0),
        entries: [this.params, weights, this.x, this.slots, this.state, this.y].map((b, binding) => ({
          binding,
          resource: { buffer: b },
        })),
      });
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /**
   * Compiles the model's shader and uploads its weights. Throws BRAID_ERR_MODEL with the compiler's or the
   * validation layer's messages, or when the model needs more workgroup memory or buffer size than the device has.
   */
  static async create(device: GPUDevice, model: Model, options: WebGpuStepOptions): Promise<WebGpuStep> {
    const packed = packWeights(model);
    const wgSize = options.workgroupSize ?? 128;
    const limits = device.limits;
    const shared = workgroupBytes(packed);
    if (shared > limits.maxComputeWorkgroupStorageSize)
      fail(
        `the model needs ${shared} bytes of workgroup memory, the device allows ${limits.maxComputeWorkgroupStorageSize} (request a higher maxComputeWorkgroupStorageSize)`,
      );
    if (wgSize > limits.maxComputeInvocationsPerWorkgroup)
      fail(`workgroupSize ${wgSize} exceeds the device's ${limits.maxComputeInvocationsPerWorkgroup}`);
    const stateBytes = options.maxStreams * packed.dims.state * 4;
    if (stateBytes > limits.maxStorageBufferBindingSize)
      fail(
        `a state table of ${options.maxStreams} streams needs ${stateBytes} bytes, over the device's binding limit`,
      );
    device.pushErrorScope('validation');
    let step: WebGpuStep;
    try {
      const shader = device.createShaderModule({ code: stepShader(packed, { workgroupSize: wgSize }) });
      const info = await shader.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length > 0)
        fail(
          `WGSL does not compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`,
        );
      step = new WebGpuStep(device, packed, options, shader);
    } catch (thrown) {
      // Leave the device's error scopes as they were: a scope left pushed would swallow the caller's errors.
      const scoped = await device.popErrorScope();
      if (thrown instanceof BraidError) throw thrown;
      const why = thrown instanceof Error ? thrown.message : String(thrown);
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `webgpu step: cannot build the step: ${why}${scoped ? ` (validation: ${scoped.message})` : ''}`,
        { cause: thrown },
      );
    }
    const error = await device.popErrorScope();
    if (error) {
      step.dispose();
      fail(`pipeline or buffers rejected: ${error.message}`);
    }
    return step;
  }

  /**
   * Advances rows 0..n−1: row r's input is x[r·F ..], its state lives in slot `slots[r]` (distinct within a step).
   * Writes the scores to y[r·L ..]. Steps must not overlap.
   */
  async step(n: number, x: Float32Array, slots: Uint32Array, y: Float32Array): Promise<void> {
    const { input: F, labels: L } = this.dims;
    if (!Number.isInteger(n) || n < 1 || n > this.maxBatch)
      fail(`batch size must be an integer in 1..${this.maxBatch}, got ${n}`);
    if (x.length < n * F) fail(`x needs ${n}×${F} floats, got ${x.length}`);
    if (y.length < n * L) fail(`y needs ${n}×${L} floats, got ${y.length}`);
    this.checkSlots(n, slots);
    if (this.busy) fail('step called while a step is running');
    this.busy = true;
    try {
      const { device } = this;
      this.paramData[0] = n;
      device.queue.writeBuffer(this.params, 0, this.paramData);
      device.queue.writeBuffer(this.x, 0, bytesOf(x), 0, n * F);
      device.queue.writeBuffer(this.slots, 0, bytesOf(slots), 0, n);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, this.bindGroup);
      pass.dispatchWorkgroups(Math.ceil(n / GPU_ROW_BLOCK));
      pass.end();
      encoder.copyBufferToBuffer(this.y, 0, this.readback, 0, n * L * 4);
      device.queue.submit([encoder.finish()]);
      await this.readback.mapAsync(MAP_READ, 0, n * L * 4);
      y.set(new Float32Array(this.readback.getMappedRange(0, n * L * 4)));
      this.readback.unmap();
    } finally {
      this.busy = false;
    }
  }

  /** Sets the states of some slots (zeros to reset a stream, a snapshot's floats to restore one): [slots][S]. */
  writeStates(slots: Uint32Array, states: Float32Array): void {
    const S = this.dims.state;
    if (states.length !== slots.length * S)
      fail(`states need ${slots.length}×${S} floats, got ${states.length}`);
    this.checkSlots(slots.length, slots);
    for (let i = 0; i < slots.length; i++)
      this.device.queue.writeBuffer(this.state, (slots[i] as number) * S * 4, bytesOf(states), i * S, S);
  }

  /** Reads the states of some slots back ([slots][S]), for snapshots and tests. */
  async readStates(slots: Uint32Array): Promise<Float32Array> {
    const S = this.dims.state;
    this.checkSlots(slots.length, slots);
    const staging = this.device.createBuffer({
      size: slots.length * S * 4,
      usage: USAGE.MAP_READ | USAGE.COPY_DST,
    });
    try {
      const encoder = this.device.createCommandEncoder();
      for (let i = 0; i < slots.length; i++)
        encoder.copyBufferToBuffer(this.state, (slots[i] as number) * S * 4, staging, i * S * 4, S * 4);
      this.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(MAP_READ);
      const states = new Float32Array(staging.getMappedRange()).slice();
      staging.unmap();
      return states;
    } finally {
      staging.destroy();
    }
  }

  dispose(): void {
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
  }

  private checkSlots(n: number, slots: Uint32Array): void {
    if (slots.length < n) fail(`slots needs ${n} entries, got ${slots.length}`);
    this.seenSlots.clear();
    for (let i = 0; i < n; i++) {
      const s = slots[i] as number;
      if (s >= this.maxStreams) fail(`slot ${s} is outside the state table of ${this.maxStreams}`);
      // Two rows on one slot would race on the same state.
      if (this.seenSlots.has(s)) fail(`slot ${s} appears twice in one step`);
      this.seenSlots.add(s);
    }
  }
}
