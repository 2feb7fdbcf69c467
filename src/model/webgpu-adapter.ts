/// <reference types="@webgpu/types" />
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { BraidError } from '../core/errors.js';

/**
 * Finding a WebGPU adapter through Dawn (the optional npm package "webgpu") and opening a device on it, for the
 * `webgpu` backend. Software adapters (SwiftShader, lavapipe/llvmpipe) run the WGSL correctly but slowly: they are
 * for tests, never chosen unless asked for.
 */

export interface AdapterDescription {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter: boolean;
}

export type AdapterProbe =
  | { readonly found: true; readonly adapter: AdapterDescription; readonly software: boolean }
  | { readonly found: false; readonly reason: string };

/** The environment variable that lets a named `webgpu` backend run on a software adapter. */
export const SOFTWARE_GPU_ENV = 'BRAID_WEBGPU_SOFTWARE';

/** Whether the environment allows a software adapter: {@link SOFTWARE_GPU_ENV}=1. */
export const softwareGpuAllowed = (env: NodeJS.ProcessEnv = process.env): boolean =>
  env[SOFTWARE_GPU_ENV] === '1';

const SOFTWARE_NAMES = /swiftshader|llvmpipe|lavapipe|softpipe|warp|basic render/i;

export function isSoftwareAdapter(a: AdapterDescription): boolean {
  return a.isFallbackAdapter || SOFTWARE_NAMES.test(`${a.architecture} ${a.device} ${a.description}`);
}

/** "google swiftshader (SwiftShader driver 5.0.0)": for messages and the log. */
export function adapterName(a: AdapterDescription): string {
  const name = [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unnamed adapter';
  const detail = a.description || a.device;
  return detail ? `${name} (${detail})` : name;
}

/**
 * `adapter.info`, read structurally: the @webgpu/types that tfjs pins (and the build sees) predates it, while Dawn
 * has it (with `isFallbackAdapter`, newer still).
 */
function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info =
    (
      adapter as unknown as {
        info?: Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>> & {
          isFallbackAdapter?: boolean;
        };
      }
    ).info ?? {};
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: info.isFallbackAdapter === true,
  };
}

interface Dawn {
  create(flags: string[]): GPU;
}

/**
 * Dawn for Node, or undefined when the optional package is not installed. The specifier is a literal so that a
 * bundler (../shared/gpu/prepare.sh uses esbuild) includes the package; `as string` keeps tsc from requiring its
 * types when it is absent.
 */
async function loadDawn(): Promise<Dawn | undefined> {
  quietDeviceSelect(process.env);
  try {
    return (await import('webgpu' as string)) as Dawn;
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

/**
 * Mesa's Vulkan packages install an implicit layer (VK_LAYER_MESA_device_select) that every Vulkan instance loads,
 * whatever VK_ICD_FILENAMES says; it looks for a Wayland display and, without XDG_RUNTIME_DIR (any service), prints
 * "error: XDG_RUNTIME_DIR is invalid" on stderr at each start. Dawn picks its adapter itself, so the layer has
 * nothing to do here: NODEVICE_SELECT=1 is its own switch to step aside, unless the user set it.
 */
export function quietDeviceSelect(env: NodeJS.ProcessEnv): void {
  env['NODEVICE_SELECT'] ??= '1';
}

const NOT_INSTALLED = 'the optional "webgpu" package (Dawn for Node) is not installed';
const NO_ADAPTER = 'Dawn found no usable GPU adapter';

/** Dawn's own lines (Vulkan loader warnings...), shortened, to say why no adapter was found. */
function dawnSays(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(warning|error)\b/i.test(l))
    .map((l) => l.replace(/^(warning|error):\s*/i, ''));
  return [...new Set(lines)].slice(0, 2).join('; ');
}

// Run in a child process: Dawn writes its Vulkan loader warnings straight to the process's stderr (no API turns
// them off), and on a machine without a GPU every start would print them. The child's stderr is kept for the reason.
const PROBE_SCRIPT = `
const { create } = await import(process.argv[1]);
const gpu = create([]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
const i = adapter && adapter.info;
process.stdout.write(JSON.stringify(i ? { vendor: i.vendor, architecture: i.architecture, device: i.device,
  description: i.description, isFallbackAdapter: i.isFallbackAdapter === true } : null));
process.exit(0);
`;

function withQuietDeviceSelect(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  quietDeviceSelect(env);
  return env;
}

function probeInChild(moduleUrl: string): Promise<AdapterProbe> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', PROBE_SCRIPT, moduleUrl],
      { timeout: 60_000, maxBuffer: 1 << 20, env: withQuietDeviceSelect() },
      (error, stdout, stderr) => {
        if (error) {
          const said = dawnSays(stderr) || stderr.trim().split('\n').slice(-2).join(' ') || error.message;
          return resolve({ found: false, reason: `Dawn's adapter probe failed: ${said}` });
        }
        let adapter: AdapterDescription | null;
        try {
          adapter = JSON.parse(stdout) as AdapterDescription | null;
        } catch {
          return resolve({
            found: false,
            reason: `Dawn's adapter probe printed no result: ${stdout.slice(0, 200)}`,
          });
        }
        if (!adapter) {
          const said = dawnSays(stderr);
          return resolve({ found: false, reason: said ? `${NO_ADAPTER} (${said})` : NO_ADAPTER });
        }
        resolve({ found: true, adapter, software: isSoftwareAdapter(adapter) });
      },
    );
  });
}

async function probeInProcess(): Promise<AdapterProbe> {
  const dawn = await loadDawn();
  if (!dawn) return { found: false, reason: NOT_INSTALLED };
  const adapter = await dawn.create([]).requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return { found: false, reason: NO_ADAPTER };
  const description = describeAdapter(adapter);
  return { found: true, adapter: description, software: isSoftwareAdapter(description) };
}

/** One probe per process and Vulkan driver setting: the answer does not change while the process runs. */
const probes = new Map<string, Promise<AdapterProbe>>();

/**
 * Which adapter Dawn would give, without loading Dawn into this process when it can be helped (a child process
 * asks, so Dawn's warnings on a machine without a GPU stay out of the log). In a bundle, where the package cannot be
 * resolved by path, Dawn is asked in this process.
 */
export function probeAdapter(): Promise<AdapterProbe> {
  const key = `${process.env['VK_ICD_FILENAMES'] ?? ''}|${process.env['VK_DRIVER_FILES'] ?? ''}`;
  let probe = probes.get(key);
  if (!probe) {
    let url: string | undefined;
    try {
      url = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
    } catch {
      url = undefined;
    }
    probe = (url ? probeInChild(url) : probeInProcess()).catch(
      (error: unknown): AdapterProbe => ({
        found: false,
        reason: `Dawn failed: ${error instanceof Error ? error.message : String(error)}`,
      }),
    );
    probes.set(key, probe);
  }
  return probe;
}

export interface OpenedDevice {
  /** Dawn's GPU object: keep it referenced while the device is used (Dawn tears devices down when it is collected). */
  readonly gpu: GPU;
  readonly device: GPUDevice;
  readonly adapter: AdapterDescription;
  readonly software: boolean;
}

/**
 * Opens a device on Dawn's adapter with the adapter's own limits for what the step needs (buffer sizes, workgroup
 * memory and size). Throws BRAID_ERR_MODEL when there is no adapter, or when it is a software one and
 * `allowSoftware` is false (naming the adapter and {@link SOFTWARE_GPU_ENV}).
 */
export async function openWebGpuDevice(options: { readonly allowSoftware: boolean }): Promise<OpenedDevice> {
  const dawn = await loadDawn();
  if (!dawn) throw new BraidError('BRAID_ERR_MODEL', NOT_INSTALLED);
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new BraidError('BRAID_ERR_MODEL', NO_ADAPTER);
  const description = describeAdapter(adapter);
  const software = isSoftwareAdapter(description);
  if (software && !options.allowSoftware)
    throw new BraidError('BRAID_ERR_MODEL', softwareRefusal(description));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  return { gpu, device, adapter: description, software };
}

/** Why a software adapter is not used, and how to use it anyway. */
export const softwareRefusal = (a: AdapterDescription): string =>
  `Dawn's adapter is a software one, ${adapterName(a)}: it runs the WGSL correctly but far slower than a CPU backend; set ${SOFTWARE_GPU_ENV}=1 and name --backend webgpu to use it anyway (tests)`;
