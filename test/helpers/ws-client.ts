import WebSocket from 'ws';
import type { ServerMessage } from '../../src/server/protocol.js';

/** Sockets opened by tests, terminated after each test. */
export const openSockets: WebSocket[] = [];

/** Opens a WebSocket to `base` + path and resolves once open; rejects with "HTTP <status> <body>" when refused. */
export function connect(base: string, path: string, init?: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(base.replace(/^http/, 'ws') + path, init);
  openSockets.push(ws);
  // Listen from the start: the server's first message can arrive in the same read as the handshake.
  inbox(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += String(d)));
      res.on('end', () => reject(new Error(`HTTP ${res.statusCode} ${body}`)));
    });
  });
}

export type Inbox = ReturnType<typeof makeInbox>;
const inboxes = new WeakMap<WebSocket, Inbox>();

/** The JSON messages a socket received since it was created, and a way to wait for one matching a predicate. */
export function inbox(ws: WebSocket): Inbox {
  let box = inboxes.get(ws);
  if (box === undefined) inboxes.set(ws, (box = makeInbox(ws)));
  return box;
}

function makeInbox(ws: WebSocket) {
  const messages: ServerMessage[] = [];
  const waiters: { pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as ServerMessage;
    messages.push(m);
    for (const w of [...waiters])
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
  });
  return {
    messages,
    next: (pred: (m: ServerMessage) => boolean, timeoutMs = 10_000) => {
      const found = messages.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise<ServerMessage>((resolve, reject) => {
        waiters.push({ pred, resolve });
        setTimeout(
          () =>
            reject(new Error(`timed out waiting for a message; got ${JSON.stringify(messages).slice(-600)}`)),
          timeoutMs,
        ).unref();
      });
    },
  };
}

/** Resolves with the close code once the socket closes. */
export const closed = (ws: WebSocket): Promise<number> =>
  new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve(1006);
    else ws.once('close', (code) => resolve(code));
  });

/** Reads a counter (or one labelled series of it) from Prometheus text; 0 when absent. */
export function metric(text: string, name: string, labels = ''): number {
  const escaped = `${name}${labels}`.replace(/[{}"=]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/**
 * Resolves once the server has handled every message this socket sent before: ws answers a ping after the messages
 * ahead of it, whose handlers run synchronously. A barrier that needs no sleep.
 */
export const roundTrip = (ws: WebSocket): Promise<void> =>
  new Promise((resolve, reject) => {
    const data = Buffer.from(Math.random().toString(36));
    const onPong = (payload: Buffer) => {
      if (!payload.equals(data)) return;
      ws.off('pong', onPong);
      resolve();
    };
    ws.on('pong', onPong);
    ws.ping(data, undefined, (error) => error && reject(error));
  });
