import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Observable, Subject, type Subscription } from 'rxjs';
import { WebSocket, WebSocketServer } from 'ws';
import { InvalidOptionError } from '../core/errors.js';
import { isStreamControl, type StreamInput } from '../core/events.js';
import { wallClockMicros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import { type IngestCounters, IngestSession } from './ingest-session.js';
import { type PipelineStats, ServerMetrics } from './metrics.js';
import { describeZodError, PROTOCOL_VERSION, type ServerMessage, subscribeSchema } from './protocol.js';
import { Subscriber, type SubscriberLimits } from './subscriber.js';

/** The prediction pipeline a server runs: server input (events and stream controls) in, predictions out. */
export interface PredictionPipeline {
  readonly labels: readonly string[];
  /** What producers should send: the demo page sizes its camera frames from this. */
  readonly inputs?: {
    readonly audioSampleRate: number;
    readonly video: { width: number; height: number; format: 'gray' | 'rgb' };
  };
  run(input$: Observable<StreamInput>): Observable<Prediction>;
  stats?(): PipelineStats;
}

export interface ServerOptions {
  readonly pipeline: PredictionPipeline;
  readonly host?: string;
  readonly port?: number;
  /** Required when bound to anything but loopback; then /ingest, /subscribe and /metrics need it. */
  readonly token?: string;
  /** Browser origins allowed besides the server's own. */
  readonly allowedOrigins?: readonly string[];
  readonly maxPayloadBytes?: number;
  readonly messagesPerSecond?: number;
  readonly maxConnections?: number;
  readonly subscriber?: Partial<SubscriberLimits>;
  /** Folder served at / (the demo page). */
  readonly staticDir?: string;
  readonly log?: (line: string) => void;
  /** Sees every input the server accepts, before the pipeline (e.g. a recorder). */
  readonly onInput?: (input: StreamInput) => void;
}

export interface BraidServer {
  readonly url: string;
  readonly port: number;
  readonly metrics: ServerMetrics;
  /** Feeds an input as if a producer had sent it (used to serve replayed recordings as live streams). */
  push(input: StreamInput): void;
  activeStreams(): string[];
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function startServer(options: ServerOptions): Promise<BraidServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token;
  if (!LOOPBACK.has(host) && (token === undefined || token.length < 8))
    throw new InvalidOptionError(
      'token',
      `binding to ${host} exposes the server beyond this machine: pass --token (8+ characters)`,
    );
  const log = options.log ?? ((line: string) => console.log(line));
  const limits: SubscriberLimits = {
    maxQueue: 256,
    maxBufferedBytes: 1 << 20,
    stallMs: 5000,
    ...options.subscriber,
  };
  const maxConnections = options.maxConnections ?? 1000;
  const staticDir = resolve(options.staticDir ?? join(ROOT, 'examples', 'browser'));
  const vendorDir = resolve(ROOT, 'node_modules', 'uplot', 'dist');

  const input$ = new Subject<StreamInput>();
  const subscribers = new Set<Subscriber>();
  const streams = new Set<string>();
  const claimed = new Set<string>();
  const counters: IngestCounters = { framesIn: 0, rejected: {} };
  const metrics = new ServerMetrics(() => options.pipeline.stats?.());
  let pipelineSubscription: Subscription | undefined;
  let closing = false;

  /** Sends to every subscriber that wants the stream, serialising once; says whether anyone got it. */
  const broadcast = (message: ServerMessage, streamId?: string): boolean => {
    let text: string | undefined;
    for (const s of subscribers)
      if (streamId === undefined || s.wants(streamId)) {
        text ??= JSON.stringify(message);
        s.send(message, text);
      }
    return text !== undefined;
  };

  const push = (input: StreamInput): void => {
    if (isStreamControl(input)) {
      if (input.control === 'open' && !streams.has(input.streamId)) {
        streams.add(input.streamId);
        broadcast({ type: 'stream', event: 'opened', streamId: input.streamId });
      }
      if (input.control === 'close' && streams.delete(input.streamId))
        broadcast({ type: 'stream', event: 'closed', streamId: input.streamId });
    } else if (!streams.has(input.streamId)) {
      streams.add(input.streamId);
      broadcast({ type: 'stream', event: 'opened', streamId: input.streamId });
    }
    options.onInput?.(input);
    input$.next(input);
  };

  const onPrediction = (p: Prediction): void => {
    metrics.predictions.inc();
    const latencyMs = (wallClockMicros() - p.windowEnd) / 1000;
    const message: ServerMessage = {
      type: 'prediction',
      streamId: p.streamId,
      windowIndex: p.windowIndex,
      windowStart: p.windowStart,
      windowEnd: p.windowEnd,
      scores: p.scores,
      present: p.present,
      latencyMs,
    };
    if (broadcast(message, p.streamId)) metrics.endToEnd.observe(Math.max(0, latencyMs) / 1000);
  };

  // A failing pipeline must not take the server down: log, count, and start it again with fresh state.
  const runPipeline = (): void => {
    pipelineSubscription = options.pipeline.run(input$.asObservable()).subscribe({
      next: onPrediction,
      error: (error: unknown) => {
        metrics.pipelineRestarts.inc();
        log(`braid: pipeline failed, restarting: ${error instanceof Error ? error.stack : String(error)}`);
        if (!closing) setTimeout(runPipeline, 100).unref();
      },
    });
  };
  runPipeline();

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    if (token === undefined) return true;
    const header = req.headers.authorization;
    return header === `Bearer ${token}` || url.searchParams.get('token') === token;
  };

  const originAllowed = (req: IncomingMessage): boolean => {
    const origin = req.headers.origin;
    if (origin === undefined) return true; // not a browser
    try {
      const o = new URL(origin);
      if (o.host === req.headers.host) return true;
    } catch {
      return false;
    }
    return options.allowedOrigins?.includes(origin) ?? false;
  };

  const http = createServer((req, res) => {
    try {
      handleHttp(req, res);
    } catch (error) {
      if (!res.headersSent)
        res.writeHead(500).end(`internal error: ${error instanceof Error ? error.message : String(error)}`);
    }
  });

  const handleHttp = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', streams: streams.size, subscribers: subscribers.size }));
      return;
    }
    if (url.pathname === '/metrics') {
      if (!authorized(req, url)) {
        res.writeHead(401).end('token required\n');
        return;
      }
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
      return;
    }
    if (url.pathname === '/api/streams') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          streams: [...streams],
          labels: options.pipeline.labels,
          inputs: options.pipeline.inputs,
        }),
      );
      return;
    }
    const [base, rel] = url.pathname.startsWith('/vendor/uplot/')
      ? [vendorDir, url.pathname.slice('/vendor/uplot/'.length)]
      : [staticDir, url.pathname === '/' ? 'index.html' : url.pathname.slice(1)];
    const file = normalize(join(base, rel));
    if (!file.startsWith(base) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': MIME[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
    });
    createReadStream(file).pipe(res);
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes ?? 4 * 1024 * 1024 });
  http.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reject = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (url.pathname !== '/ingest' && url.pathname !== '/subscribe') return reject(404, 'Not Found');
    if (!originAllowed(req)) return reject(403, 'Forbidden');
    if (!authorized(req, url)) return reject(401, 'Unauthorized');
    if (wss.clients.size >= maxConnections) return reject(503, 'Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) =>
      url.pathname === '/ingest' ? onProducer(ws) : onSubscriber(ws),
    );
  });

  const sendError = (ws: WebSocket, code: string, message: string) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'error', code, message }));
  };

  const onProducer = (ws: WebSocket): void => {
    metrics.clients.inc({ role: 'producer' });
    const session = new IngestSession(
      push,
      { claim: (id) => !claimed.has(id) && !!claimed.add(id), release: (id) => claimed.delete(id) },
      counters,
      { messagesPerSecond: options.messagesPerSecond ?? 2000 },
    );
    let lastErrorAt = 0;
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      const before = counters.framesIn;
      const error = session.handle(isBinary ? bytes : bytes.toString('utf8'), isBinary);
      if (counters.framesIn > before) metrics.framesIn.inc(counters.framesIn - before);
      if (error === undefined) return;
      metrics.ingestRejected.inc({ reason: error.reason });
      // A flooding producer gets at most ten error messages a second; every refusal is still counted.
      const now = performance.now();
      if (error.reason !== 'rate_limited' || now - lastErrorAt > 100) {
        lastErrorAt = now;
        sendError(ws, error.reason, error.message);
      }
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      session.close();
      metrics.clients.dec({ role: 'producer' });
    });
  };

  const onSubscriber = (ws: WebSocket): void => {
    metrics.clients.inc({ role: 'subscriber' });
    const subscriber = new Subscriber(ws, limits, (n) => metrics.subscriberDropped.inc(n));
    subscribers.add(subscriber);
    subscriber.send({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      streams: [...streams],
      labels: [...options.pipeline.labels],
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary)
        return sendError(
          ws,
          'bad_message',
          'subscribers send JSON: {"subscribe": ["stream", ...]} or {"subscribe": "*"}',
        );
      let value: unknown;
      try {
        value = JSON.parse(String(data));
      } catch {
        return sendError(ws, 'bad_json', 'message is not valid JSON');
      }
      const parsed = subscribeSchema.safeParse(value);
      if (!parsed.success) return sendError(ws, 'bad_message', describeZodError(parsed.error));
      subscriber.subscribe(parsed.data.subscribe);
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      subscriber.close();
      subscribers.delete(subscriber);
      metrics.clients.dec({ role: 'subscriber' });
    });
  };

  // Subscribers that receive nothing new still get their queue flushed and their stall checked.
  const sweep = setInterval(() => {
    for (const s of subscribers) s.flush();
  }, 250);
  sweep.unref();

  await new Promise<void>((resolveListen, rejectListen) => {
    http.once('error', rejectListen);
    http.listen(options.port ?? 8080, host, () => resolveListen());
  });
  const port = (http.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${shownHost}:${port}`,
    port,
    metrics,
    push,
    activeStreams: () => [...streams],
    close: async () => {
      closing = true;
      clearInterval(sweep);
      for (const client of wss.clients) client.terminate();
      input$.complete();
      pipelineSubscription?.unsubscribe();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
