/** The part of the WHATWG WebSocket both browsers and the `ws` package offer, which is all the client uses. */
export interface SocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: string;
  send(data: string | ArrayBufferView | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: { data?: unknown; code?: number }) => void): void;
  /** `ws` only: server pings, the client's way to notice a dead connection in Node. */
  on?(event: 'ping', listener: () => void): void;
  /** `ws` only: drop the connection at once. */
  terminate?(): void;
}

export type SocketFactory = (url: string) => SocketLike;

export const OPEN = 1;

/** Drops a socket at once, open or still connecting: `ws`'s terminate, else close. */
export function drop(socket: SocketLike): void {
  try {
    if (socket.terminate) socket.terminate();
    else socket.close();
  } catch {
    // already closed
  }
}

/**
 * The WebSocket to use: the one given, the platform's (browsers, Node 22+), or the `ws` package (Node 20), loaded
 * only when needed so that browsers never see the import.
 */
export async function socketFactory(given?: SocketFactory): Promise<SocketFactory> {
  if (given) return given;
  const platform = (globalThis as { WebSocket?: new (url: string) => SocketLike }).WebSocket;
  if (platform) return (url) => new platform(url);
  const ws = (await import('ws')).default as unknown as new (url: string) => SocketLike;
  return (url) => new ws(url);
}

/** ws:// or wss:// URL of one of the server's endpoints, from the server's base URL (http or ws), with the token. */
export function endpointUrl(base: string, path: '/ingest' | '/subscribe', token?: string): string {
  const url = new URL(base);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.pathname === '/' || url.pathname === '') url.pathname = path;
  if (token !== undefined) url.searchParams.set('token', token);
  return url.toString();
}
