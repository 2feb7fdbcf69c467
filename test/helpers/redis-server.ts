import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireTool } from './system-tools.js';

/** A real redis-server of the test's own: a free port, a temporary directory, the persistence cluster.md asks for. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Kills it (SIGKILL: nothing flushed but what appendfsync already wrote). */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory (its append-only file is read back). */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

/** Whether redis-server is installed: skipped locally with a message, a failure under CI=true (see .ci/run). */
export const hasRedis = (): boolean => requireTool('redis-server');

/** A port nobody listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function spawnRedis(port: number, dir: string, extra: readonly string[] = []): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.resume();
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`)),
    );
    child.once('error', reject);
  });
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}

/** Starts redis-server on a free port with a temporary directory and waits for "Ready to accept connections". */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'braid-redis-'));
  let child: ChildProcess | undefined = await spawnRedis(port, dir);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    kill: async () => {
      await stop(child, 'SIGKILL');
      child = undefined;
    },
    restart: async () => {
      await stop(child, 'SIGKILL');
      child = await spawnRedis(port, dir);
    },
    close: async () => {
      await stop(child, 'SIGTERM');
      child = undefined;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A real Redis Cluster of the test's own: masters on free ports (each with its bus port, +10000), no replicas. */
export interface RedisClusterServers {
  readonly ports: readonly number[];
  /** Any node's URL names the cluster (braid asks the server whether it is one). */
  readonly url: string;
  close(): Promise<void>;
}

/** Whether redis-server and redis-cli (for `--cluster create`) are installed. */
export const hasRedisCluster = (): boolean => requireTool('redis-server') && requireTool('redis-cli');

/** A free port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(taken: readonly number[]): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port > 55_000 || taken.includes(port)) continue;
    const bus = createServer();
    const free = await new Promise<boolean>((resolve) => {
      bus.once('error', () => resolve(false));
      bus.listen(port + 10_000, '127.0.0.1', () => resolve(true));
    });
    if (free) await new Promise<void>((resolve) => bus.close(() => resolve()));
    if (free) return port;
  }
}

/**
 * Starts `nodes` redis-servers with `--cluster-enabled yes`, joins them with `redis-cli --cluster create` (the 16384
 * slots split between them) and waits until every node says `cluster_state:ok`.
 */
export async function startRedisCluster(nodes = 3): Promise<RedisClusterServers> {
  const run = promisify(execFile);
  const ports: number[] = [];
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const close = async () => {
    await Promise.all(children.map((c) => stop(c, 'SIGTERM')));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < nodes; i++) {
      const port = await clusterPort(ports);
      const dir = mkdtempSync(join(tmpdir(), 'braid-redis-cluster-'));
      ports.push(port);
      dirs.push(dir);
      children.push(
        await spawnRedis(port, dir, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          '5000',
        ]),
      );
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    // The nodes agree through their bus after `create` returns: wait for every one to say so.
    for (const port of ports)
      for (;;) {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
        if (/^cluster_state:ok/m.test(stdout)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
  } catch (error) {
    await close();
    throw error;
  }
  return { ports, url: `redis://127.0.0.1:${ports[0]}`, close };
}
