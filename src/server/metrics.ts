import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What a prediction pipeline reports for /metrics: cumulative counters and latency samples since the last read. */
export interface PipelineStats {
  readonly counters: Readonly<Record<string, number>>;
  /** Model step latencies (seconds) since the last call; the pipeline clears them once read. */
  readonly stepLatencies: readonly number[];
}

/**
 * Prometheus metrics of one server, in a registry of its own (no process-wide default registry, so several servers
 * and tests can live in one process). Pipeline counters are read at scrape time.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly clients = new Gauge({
    name: 'braid_clients',
    help: 'Connected WebSocket clients',
    labelNames: ['role'],
    registers: [this.registry],
  });
  readonly endToEnd = new Histogram({
    name: 'braid_end_to_end_latency_seconds',
    help: 'From a window end (capture time) to its prediction being sent to a subscriber',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly ingestRejected = new Counter({
    name: 'braid_ingest_rejected_total',
    help: 'Producer messages refused, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly framesIn = new Counter({
    name: 'braid_ingest_frames_total',
    help: 'Producer frames and events accepted',
    registers: [this.registry],
  });
  readonly subscriberDropped = new Counter({
    name: 'braid_subscriber_dropped_total',
    help: 'Predictions dropped for slow subscribers',
    registers: [this.registry],
  });
  readonly predictions = new Counter({
    name: 'braid_predictions_total',
    help: 'Predictions produced',
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: 'braid_connections_refused_total',
    help: 'HTTP requests and WebSocket connections turned away, by reason (bad_host, bad_origin, unauthorized, producer_limit, subscriber_limit, address_limit, hello_timeout, idle_timeout, not_found)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'braid_rejected_total',
    help: 'Producer input dropped inside the pipeline and reported back to its producer, by reason (late, non_monotonic, duplicate, corrupt_image, text_too_long, model_queue_full...)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly errorRepliesSuppressed = new Counter({
    name: 'braid_error_replies_suppressed_total',
    help: 'Error replies to producers held back by the per-connection reply rate limit (the next reply carries the count)',
    registers: [this.registry],
  });
  readonly heartbeatTimeouts = new Counter({
    name: 'braid_heartbeat_timeouts_total',
    help: "Connections cut off for missing two pongs (their producers' streams are suspended for the resume grace)",
    registers: [this.registry],
  });
  readonly pipelineRestarts = new Counter({
    name: 'braid_pipeline_restarts_total',
    help: 'Times the prediction pipeline failed and was restarted',
    registers: [this.registry],
  });

  /** Streams suspended now, and the suspensions, resumes and expired graces so far, read at scrape time. */
  watchStreams(
    read: () => { suspended: number; suspensions: number; resumes: number; graceExpiries: number },
  ): void {
    const registers = [this.registry];
    new Gauge({
      name: 'braid_streams_suspended',
      help: 'Streams whose producer was cut off, waiting for a resume',
      registers,
      collect() {
        this.set(read().suspended);
      },
    });
    for (const [key, name, help] of [
      [
        'suspensions',
        'braid_stream_suspensions_total',
        'Producers cut off without a close (their streams suspended)',
      ],
      [
        'resumes',
        'braid_stream_resumes_total',
        'Streams continued by a reconnecting producer (resume or take-over)',
      ],
      [
        'graceExpiries',
        'braid_stream_grace_expired_total',
        'Suspended streams closed when the resume grace ran out',
      ],
    ] as const) {
      let seen = 0;
      new Counter({
        name,
        help,
        registers,
        collect() {
          const now = read()[key];
          if (now > seen) this.inc(now - seen);
          seen = now;
        },
      });
    }
  }

  constructor(readStats: () => PipelineStats | undefined) {
    // The process's own health (process_*: CPU, resident memory, open handles; nodejs_*: heap, event-loop lag, GC).
    collectDefaultMetrics({ register: this.registry });
    const stepLatency = new Histogram({
      name: 'braid_step_latency_seconds',
      help: 'Model step latency, results read back included',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
      registers: [],
    });
    const seen = new Map<string, number>();
    new Counter({
      name: 'braid_pipeline_total',
      help: 'Pipeline counters: events in, windows, late events, rejected and dropped by reason',
      labelNames: ['counter'],
      registers: [this.registry],
      collect() {
        const stats = readStats();
        if (stats === undefined) return;
        for (const l of stats.stepLatencies) stepLatency.observe(l);
        for (const [name, value] of Object.entries(stats.counters)) {
          const delta = value - (seen.get(name) ?? 0);
          if (delta > 0) this.inc({ counter: name }, delta);
          seen.set(name, value);
        }
      },
    });
    // Registered after the counter whose collect() feeds it, so a scrape shows the samples it just read.
    this.registry.registerMetric(stepLatency);
  }
}
