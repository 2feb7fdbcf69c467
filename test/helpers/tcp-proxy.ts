import { createServer, type Server, Socket } from 'node:net';

/**
 * A TCP proxy in front of a server, so a test can break the network the way networks break: `cut()` drops every
 * connection at once with no WebSocket close frame (as a dead link or a killed process does), `blackhole()` keeps the
 * connections open but stops carrying bytes both ways (a silent network partition), `restore()` carries them again.
 */
export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Connections made through the proxy so far. */
  readonly connections: number;
  cut(): void;
  blackhole(): void;
  restore(): void;
  close(): Promise<void>;
}

/**
 * `target` gives the port to forward to, read when a connection arrives (the target may start after the proxy).
 * `latencyMs` delays every chunk that way, each direction (a long link: a round trip takes twice it), in order.
 */
export async function startProxy(target: () => number, latencyMs = 0): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let holes = false;
  let connections = 0;
  const server: Server = createServer((client) => {
    connections++;
    const upstream = new Socket();
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    upstream.connect(target(), '127.0.0.1');
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => {
        if (holes) return;
        if (latencyMs === 0) to.write(chunk);
        // Timers of one delay fire in the order they were set: the bytes keep their order.
        else
          setTimeout(() => {
            if (!to.destroyed) to.write(chunk);
          }, latencyMs);
      });
    forward(client, upstream);
    forward(upstream, client);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('error', drop);
    upstream.on('error', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    cut: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    blackhole: () => {
      holes = true;
    },
    restore: () => {
      holes = false;
    },
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
