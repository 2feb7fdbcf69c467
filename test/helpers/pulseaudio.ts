import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A PulseAudio server with one null sink, for a headless browser on a machine without a sound card: Firefox runs an
 * AudioContext only when it can open an output, and with no sound server its context stays suspended. Returns the
 * environment that points a child process at it, and a stop function.
 */
export async function startPulseAudio(): Promise<{ env: Record<string, string>; stop: () => void }> {
  const runtime = mkdtempSync(join(tmpdir(), 'braid-pulse-'));
  const env = { ...process.env, XDG_RUNTIME_DIR: runtime, HOME: runtime } as Record<string, string>;
  const child: ChildProcess = spawn(
    'pulseaudio',
    [
      '--daemonize=no',
      '--exit-idle-time=-1',
      '-n',
      '--load=module-null-sink sink_name=braid_null',
      '--load=module-native-protocol-unix',
    ],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d) => (log += String(d)));
  const socket = join(runtime, 'pulse', 'native');
  const deadline = Date.now() + 15_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`pulseaudio did not start (exit ${child.exitCode}): ${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { env: { XDG_RUNTIME_DIR: runtime }, stop: () => child.kill('SIGKILL') };
}
