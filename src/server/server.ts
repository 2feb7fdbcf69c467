import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Subject } from 'rxjs';
import { WebSocketServer } from 'ws';
import { streamOrigin } from '../align/window-aligner.js';
import { InvalidOptionError } from '../core/errors.js';
import type { StreamInput } from '../core/events.js';
import { type Logger, silentLogger } from '../core/logger.js';
import type { InputRefusal } from '../core/refusal.js';
import { wallClockMicros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import { EventTracker, type LabelEvent } from '../events/event-tracker.js';
import { type LabelEventSettings, resolveEventSettings } from '../events/settings.js';
import { ConnectionLimiter, type ConnectionLimits, type ConnectionRole } from './connection-limits.js';
import { Heartbeat } from './heartbeat.js';
import { createHttpHandler } from './http-routes.js';
import type { IngestCounters } from './ingest-session.js';
import { ServerMetrics } from './metrics.js';
import type { PredictionPipeline } from './pipeline.js';
import { type BackoffOptions, PipelineSupervisor } from './pipeline-supervisor.js';
import { ProducerConnection, type ProducerTimeouts } from './producer-connection.js';
import {
  type Hello,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  type ReadyMessage,
  type ServerMessage,
} from './protocol.js';
import { isLoopbackHost, RequestGuard } from './request-guard.js';
import { type Claim, StreamDirectory } from './stream-directory.js';
import type { SubscriberLimits } from './subscriber.js';
import { attachSubscriber } from './subscriber-connection.js';
import { SubscriberHub } from './subscriber-hub.js';

export type { PipelineInputs, PredictionPipeline } from './pipeline.js';

export interface ServerOptions {
  readonly pipeline: PredictionPipeline;
  readonly host?: string;
  readonly port?: number;
  /** Required when bound to anything but loopback; then /ingest, /subscribe, /metrics and /api/streams need it. */
  readonly token?: string;
  /** Browser origins allowed besides the server's own. */
  readonly allowedOrigins?: readonly string[];
  /** Host names a loopback-bound server answers besides 127.0.0.1, localhost and [::1] (e.g. behind a proxy). */
  readonly allowedHosts?: readonly string[];
  readonly maxPayloadBytes?: number;
  readonly messagesPerSecond?: number;
  readonly connections?: Partial<ConnectionLimits>;
  readonly timeouts?: Partial<ProducerTimeouts>;
  /** Every connection is pinged this often (ms); one that misses two pongs is cut off. Default 10 s. */
  readonly heartbeatMs?: number;
  /** A producer cut off without a close can resume its stream for this long (ms); 0: never. Default 30 s. */
  readonly resumeGraceMs?: number;
  readonly subscriber?: Partial<SubscriberLimits>;
  /** How a failed pipeline is restarted. */
  readonly restartBackoff?: BackoffOptions;
  /** Folder served at / (the demo page). */
  readonly staticDir?: string;
  readonly log?: Logger;
  /** Sees every input the server accepts, before the pipeline (e.g. a recorder). */
  readonly onInput?: (input: StreamInput) => void;
  /** More for /healthz (a cluster gateway says what it sees of Redis and the partitions). */
  readonly health?: () => Record<string, unknown>;
  /** Sees every prediction the pipeline makes, whether or not anyone subscribed (e.g. a recorder). */
  readonly onPrediction?: (prediction: Prediction) => void;
  /** How each label's scores become on/off events (docs/events.md); default 0.6 / 0.4, no minimum durations. */
  readonly events?: LabelEventSettings;
  /** Sees every event, whether or not anyone subscribed (e.g. a recorder). */
  readonly onEvent?: (event: LabelEvent) => void;
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

export const DEFAULT_TIMEOUTS: ProducerTimeouts = { helloMs: 10_000, idleMs: 300_000 };
const DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const positiveMs = (name: string, value: number): number => {
  if (!Number.isFinite(value) || value <= 0)
    throw new InvalidOptionError(name, `must be > 0 ms, got ${value}`);
  return value;
};

/**
 * braid's server: the demo page, producers on /ingest, subscribers on /subscribe, health and metrics, around one
 * supervised prediction pipeline. Each concern lives in its own module: who may connect (request-guard,
 * connection-limits), producers (producer-connection, ingest-session), subscribers (subscriber-connection, subscriber,
 * subscriber-hub), the streams (stream-directory), the pipeline's restarts (pipeline-supervisor), plain HTTP
 * (http-routes).
 */
export async function startServer(options: ServerOptions): Promise<BraidServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token;
  if (!isLoopbackHost(host) && (token === undefined || token.length < 8))
    throw new InvalidOptionError(
      'token',
      `binding to ${host} exposes the server beyond this machine: pass --token (8+ characters)`,
    );
  const log = options.log ?? silentLogger;
  const subscriberLimits: SubscriberLimits = {
    maxQueue: 256,
    maxBufferedBytes: 1 << 20,
    stallMs: 5000,
    ...options.subscriber,
  };
  const timeouts: ProducerTimeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  positiveMs('timeouts.helloMs', timeouts.helloMs);
  positiveMs('timeouts.idleMs', timeouts.idleMs);
  const maxPayload = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD;
  const limiter = new ConnectionLimiter(options.connections);
  let port = 0;
  const guard = new RequestGuard({
    bindHost: host,
    port: () => port,
    token,
    allowedOrigins: options.allowedOrigins,
    allowedHosts: options.allowedHosts,
  });

  const heartbeatMs = options.heartbeatMs ?? 10_000;
  positiveMs('heartbeatMs', heartbeatMs);
  const resumeGraceMs = options.resumeGraceMs ?? 30_000;
  if (!Number.isFinite(resumeGraceMs) || resumeGraceMs < 0)
    throw new InvalidOptionError('resumeGraceMs', `must be ≥ 0 ms, got ${resumeGraceMs}`);

  const input$ = new Subject<StreamInput>();
  const hub = new SubscriberHub();
  // Controls from the directory (open, close, suspend, resume) take the same path as producers' inputs.
  const directory: StreamDirectory = new StreamDirectory(hub, {
    resumeGraceMs,
    push: (input) => push(input),
  });
  const counters: IngestCounters = { framesIn: 0, rejected: {} };
  const metrics = new ServerMetrics(() => options.pipeline.stats?.());
  const { pipeline } = options;

  const push = (input: StreamInput): void => {
    directory.note(input);
    options.onInput?.(input);
    input$.next(input);
  };

  const onPrediction = (p: Prediction): void => {
    metrics.predictions.inc();
    options.onPrediction?.(p);
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
      ...(p.partial && { partial: true as const }),
    };
    if (hub.broadcast(message, p.streamId)) metrics.endToEnd.observe(Math.max(0, latencyMs) / 1000);
    sendEvents(events.observe(p));
  };

  // Events right after the prediction that made them, so a subscriber of both gets them in order.
  const events = new EventTracker(options.events ?? resolveEventSettings(pipeline.labels));
  const sendEvents = (list: readonly LabelEvent[]): void => {
    for (const e of list) {
      metrics.labelEvents.inc({ state: e.state });
      options.onEvent?.(e);
      hub.broadcast({ type: 'event', ...e }, e.streamId);
    }
  };

  const onRefused = (r: InputRefusal): void => {
    directory.ownerOf(r.streamId)?.refused(r);
  };

  // A failing pipeline must not take the server down: it is logged, counted and started again with fresh state.
  const supervisor = new PipelineSupervisor(
    pipeline,
    input$.asObservable(),
    {
      prediction: onPrediction,
      refused: onRefused,
      step: (ms) => metrics.stepLatency.observe(ms / 1000),
      stream: (mark) => {
        if (mark.state !== 'end') return;
        sendEvents(events.close(mark.streamId));
        directory.ended(mark.streamId);
      },
      failed: (error, restartInMs) => {
        metrics.pipelineRestarts.inc();
        // The restarted pipeline starts every stream's state afresh: what was on ends where its predictions did.
        for (const id of events.streamIds()) sendEvents(events.close(id));
        directory.pipelineRestarted();
        log.error(
          {
            event: 'pipeline_restart',
            restartInMs,
            error: error instanceof Error ? error.stack : String(error),
          },
          `pipeline failed, restarting in ${restartInMs} ms: ${error instanceof Error ? error.message : String(error)}`,
        );
      },
    },
    options.restartBackoff,
  );
  supervisor.start();

  const refusedConnection = (reason: string) => metrics.connectionsRefused.inc({ reason });
  const http = createServer(
    createHttpHandler({
      guard,
      staticDir: options.staticDir ?? join(ROOT, 'examples', 'browser'),
      registry: metrics.registry,
      health: () => ({ status: 'ok', streams: directory.size, subscribers: hub.size, ...options.health?.() }),
      streams: () => ({ streams: directory.list(), labels: pipeline.labels, inputs: pipeline.inputs }),
      refused: refusedConnection,
    }),
  );

  metrics.watchStreams(() => directory);
  const modelInfo = { id: pipeline.modelId ?? 'model', labels: [...pipeline.labels] };
  const heartbeat = new Heartbeat(heartbeatMs, () => metrics.heartbeatTimeouts.inc());
  const ready = (hello: Hello, claim: Claim): ReadyMessage => {
    const w = pipeline.windowing;
    const audio = ingestLimits.audio;
    return {
      type: 'ready',
      version: PROTOCOL_VERSION,
      streamId: hello.streamId,
      resumed: claim.resumed,
      resumeToken: claim.resumeToken,
      model: modelInfo,
      windowing: {
        size: w?.size ?? 0,
        hop: w?.hop ?? 0,
        phase: w?.phase ?? 'aligned',
        origin: w
          ? streamOrigin(hello.streamId, { origin: w.origin ?? 0, hop: w.hop, phase: w.phase ?? 'aligned' })
          : 0,
        outOfOrderness: w?.outOfOrderness ?? 0,
        allowedLateness: w?.allowedLateness ?? 0,
        idleTimeoutMs: w && Number.isFinite(w.idleTimeout) ? w.idleTimeout / 1000 : null,
      },
      accepts: {
        audio: {
          format: 'pcm16',
          sampleRates: audio?.sampleRates ?? { min: 8000, max: 48_000 },
          channels: [...(audio?.channels ?? [1, 2])],
          preferredSampleRate: pipeline.inputs?.audioSampleRate ?? 16_000,
        },
        video: {
          formats: ['gray', 'rgb', 'jpeg', 'png'],
          preferred: pipeline.inputs?.video ?? { format: 'gray', width: 64, height: 48 },
        },
        frameBounds: true,
        maxMessageBytes: maxPayload,
        messagesPerSecond: ingestLimits.messagesPerSecond,
      },
      heartbeatMs,
      resumeGraceMs,
      ...(claim.resumed && { last: claim.last }),
    };
  };
  const ingestLimits = {
    messagesPerSecond: options.messagesPerSecond ?? 2000,
    maxMessageBytes: maxPayload,
    // What the features can use: any rate and stereo when they resample; otherwise the model's rate, mono.
    audio:
      pipeline.inputs?.audio ??
      (pipeline.inputs
        ? {
            sampleRates: { min: pipeline.inputs.audioSampleRate, max: pipeline.inputs.audioSampleRate },
            channels: [1],
          }
        : undefined),
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload });
  http.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const address = req.socket.remoteAddress ?? '';
    const reject = (status: number, reason: string, text: string) => {
      refusedConnection(reason);
      log.info(
        { event: 'connection_refused', path: url.pathname, address, status, reason },
        `refused a connection to ${url.pathname} from ${address}: ${text}`,
      );
      socket.end(
        `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
      );
    };
    const role: ConnectionRole | undefined =
      url.pathname === '/ingest' ? 'producer' : url.pathname === '/subscribe' ? 'subscriber' : undefined;
    if (role === undefined) return reject(404, 'not_found', 'Not Found');
    const refusal = guard.check(req, url, true);
    if (refusal) return reject(refusal.status, refusal.reason, refusal.message);
    const admission = limiter.admit(role, address);
    if (!admission.ok)
      return reject(admission.reason === 'address_limit' ? 429 : 503, admission.reason, admission.message);
    socket.once('close', admission.release);
    wss.handleUpgrade(req, socket, head, (ws) => {
      metrics.clients.inc({ role });
      const since = performance.now();
      log.info({ event: 'connected', role, address }, `${role} connected from ${address}`);
      ws.once('close', (code) => {
        metrics.clients.dec({ role });
        const seconds = Math.round(performance.now() - since) / 1000;
        log.info(
          { event: 'disconnected', role, address, code, seconds },
          `${role} from ${address} left (code ${code})`,
        );
      });
      heartbeat.watch(ws);
      if (role === 'producer')
        new ProducerConnection(ws, ingestLimits, timeouts, {
          push,
          directory,
          ready,
          counters,
          rejected: (reason) => metrics.ingestRejected.inc({ reason }),
          accepted: (n) => n > 0 && metrics.framesIn.inc(n),
          suppressed: () => metrics.errorRepliesSuppressed.inc(),
          timedOut: refusedConnection,
          log,
          address,
        });
      else
        attachSubscriber(
          ws,
          subscriberLimits,
          {
            hub,
            openStreams: () => directory.list(),
            welcome: () => ({
              type: 'welcome',
              version: PROTOCOL_VERSION,
              versions: [...PROTOCOL_VERSIONS],
              streams: directory.list(),
              labels: [...pipeline.labels],
              model: modelInfo,
              heartbeatMs,
            }),
            dropped: (n) => metrics.subscriberDropped.inc(n),
            rejected: (reason) => metrics.subscriberRejected.inc({ reason }),
            suppressed: () => metrics.errorRepliesSuppressed.inc(),
          },
          socket,
        );
    });
  });

  // Subscribers that receive nothing new still get their queue flushed and their stall checked.
  const sweep = setInterval(() => hub.flush(), 250);
  sweep.unref();

  await new Promise<void>((resolveListen, rejectListen) => {
    http.once('error', rejectListen);
    http.listen(options.port ?? 8080, host, () => resolveListen());
  });
  port = (http.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${shownHost}:${port}`,
    port,
    metrics,
    push,
    activeStreams: () => directory.list(),
    close: async () => {
      clearInterval(sweep);
      heartbeat.stop();
      directory.closeSuspended();
      for (const client of wss.clients) client.terminate();
      input$.complete();
      supervisor.stop();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
