import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * What a prediction pipeline reports for /metrics: counters cumulative since its current run started (a restart
 * starts them again from zero) and gauges of now, by the names of PredictionPipelineRunner.stats(). Reading has no
 * side effect, so any number of readers see the same values.
 */
export interface PipelineStats {
  readonly counters: Readonly<Record<string, number>>;
  readonly gauges?: Readonly<Record<string, number>>;
}

/** A pipeline counter key (`late_video`, `rejected_duplicate`...) as a Prometheus family and its labels. */
interface CounterFamily {
  readonly name: string;
  readonly help: string;
  /** Key prefix; the rest of the key is the label's value. Absent: the key is matched whole. */
  readonly prefix?: string;
  readonly key?: string;
  readonly labels?: Record<string, string>;
  readonly label?: string;
}

const FAMILIES: readonly CounterFamily[] = [
  {
    name: 'braid_events_total',
    help: 'Events accepted into alignment, by modality',
    prefix: 'events_in_',
    label: 'modality',
  },
  { name: 'braid_windows_total', help: 'Windows closed and featurized', key: 'windows' },
  {
    name: 'braid_late_events_total',
    help: 'Events that arrived after their window closed, by modality',
    prefix: 'late_',
    label: 'modality',
  },
  {
    name: 'braid_partially_late_events_total',
    help: 'Events that also belonged to an already closed (overlapping) window',
    key: 'partially_late',
  },
  {
    name: 'braid_partial_windows_total',
    help: 'Windows closed with data lost in a producer cut',
    key: 'partial_windows',
  },
  {
    name: 'braid_audio_discontinuities_total',
    help: "Audio frames stamped more than a sample period after (gap) or before (overlap) the previous frame's end",
    key: 'audio_gaps',
    labels: { kind: 'gap' },
  },
  {
    name: 'braid_audio_discontinuities_total',
    help: '',
    key: 'audio_overlaps',
    labels: { kind: 'overlap' },
  },
  {
    name: 'braid_forced_closes_total',
    help: 'Windows closed early because a buffer cap was reached',
    key: 'forced_closes',
  },
  {
    name: 'braid_idle_transitions_total',
    help: 'Sources that went idle (sent nothing for the idle timeout)',
    key: 'idle_transitions',
  },
  {
    name: 'braid_stream_restarts_total',
    help: 'Stream timelines started again (reset messages)',
    key: 'stream_restarts',
  },
  { name: 'braid_model_steps_total', help: 'Batched model steps', key: 'model_steps' },
  {
    name: 'braid_model_resets_total',
    help: 'Recurrent states started from zero, by reason (start, gap, request, device_lost)',
    prefix: 'model_resets_',
    label: 'reason',
  },
  {
    name: 'braid_model_failovers_total',
    help: 'Moves from a failed GPU backend to the CPU',
    key: 'model_backend_failovers',
  },
  // Everything the pipeline dropped, by the stage that dropped it; each is also told to the producer.
  {
    name: 'braid_rejected_total',
    help: 'Producer input dropped inside the pipeline, by stage and reason (each also sent back to the producer)',
    prefix: 'rejected_',
    labels: { stage: 'align' },
    label: 'reason',
  },
  {
    name: 'braid_rejected_total',
    help: '',
    prefix: 'bad_frame_',
    labels: { stage: 'features' },
    label: 'reason',
  },
  {
    name: 'braid_rejected_total',
    help: '',
    prefix: 'decode_dropped_',
    labels: { stage: 'decode' },
    label: 'reason',
  },
  {
    name: 'braid_rejected_total',
    help: '',
    prefix: 'model_dropped_',
    labels: { stage: 'model' },
    label: 'reason',
  },
  {
    name: 'braid_rejected_total',
    help: '',
    prefix: 'shard_rejected_',
    labels: { stage: 'shard' },
    label: 'reason',
  },
];

const GAUGES: readonly CounterFamily[] = [
  { name: 'braid_open_streams', help: 'Streams with open windows in the pipeline', key: 'open_streams' },
  { name: 'braid_buffered_events', help: 'Events held in alignment buffers', key: 'buffered_events' },
  { name: 'braid_model_states', help: 'Streams whose recurrent state the model holds', key: 'model_states' },
  {
    name: 'braid_model_queued_windows',
    help: 'Windows waiting in front of the model',
    key: 'model_queued_windows',
  },
  {
    name: 'braid_shard_inputs_in_flight',
    help: 'Inputs handed to shard threads (serve --workers) and not yet taken by them',
    key: 'shard_inputs_in_flight',
  },
  {
    name: 'braid_watermark_lag_seconds',
    help: "How far each modality's watermark trails the wall clock, worst stream (live, epoch-timed streams)",
    prefix: 'watermark_lag_',
    label: 'modality',
  },
];

function match(family: CounterFamily, key: string): Record<string, string> | undefined {
  if (family.key !== undefined) return key === family.key ? { ...family.labels } : undefined;
  if (family.prefix === undefined || !key.startsWith(family.prefix)) return undefined;
  return { ...family.labels, [family.label!]: key.slice(family.prefix.length) };
}

/**
 * Prometheus metrics of one server, in a registry of its own (no process-wide default registry, so several servers
 * and tests can live in one process): one family per counter, histograms observed where the event happens, the
 * process's own metrics (collectDefaultMetrics: CPU, memory, handles, heap, event-loop lag, GC). docs/metrics.md
 * lists them.
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
  readonly stepLatency = new Histogram({
    name: 'braid_step_latency_seconds',
    help: 'Model step latency, results read back included, observed at every step',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [this.registry],
  });
  readonly ingestRejected = new Counter({
    name: 'braid_ingest_rejected_total',
    help: 'Producer messages refused at the protocol level, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly subscriberRejected = new Counter({
    name: 'braid_subscriber_rejected_total',
    help: 'Subscriber messages refused (not a subscribe message), by reason',
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
    help: 'Messages dropped for slow subscribers (the oldest predictions first; events only when none is queued)',
    registers: [this.registry],
  });
  readonly predictions = new Counter({
    name: 'braid_predictions_total',
    help: 'Predictions produced',
    registers: [this.registry],
  });
  readonly labelEvents = new Counter({
    name: 'braid_label_events_total',
    help: 'On/off events of labels (docs/events.md), by state',
    labelNames: ['state'],
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: 'braid_connections_refused_total',
    help: 'HTTP requests and WebSocket connections turned away, by reason (bad_host, bad_origin, unauthorized, producer_limit, subscriber_limit, address_limit, hello_timeout, idle_timeout, not_found)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly errorRepliesSuppressed = new Counter({
    name: 'braid_error_replies_suppressed_total',
    help: 'Error replies to producers and subscribers held back by the per-connection reply rate limit (the next reply carries the count)',
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
    collectDefaultMetrics({ register: this.registry });
    const counters = new Map<string, Counter>();
    const gauges = new Map<string, Gauge>();
    // One collector reads the pipeline once per scrape, registered before the families it
    // feeds, so a scrape shows what it just read.
    this.registry.registerMetric(
      new Gauge({
        name: 'braid_pipeline_up',
        help: '1 while a prediction pipeline is running',
        registers: [],
        collect() {
          const stats = readStats();
          this.set(stats === undefined ? 0 : 1);
          if (stats) sync(stats);
        },
      }),
    );

    const labelsOf = (f: CounterFamily) => [...Object.keys(f.labels ?? {}), ...(f.label ? [f.label] : [])];
    for (const f of FAMILIES) {
      const existing = counters.get(f.name);
      if (existing) continue;
      const labelNames = [...new Set(FAMILIES.filter((g) => g.name === f.name).flatMap(labelsOf))];
      counters.set(
        f.name,
        new Counter({ name: f.name, help: f.help, labelNames, registers: [this.registry] }),
      );
    }
    for (const f of GAUGES)
      gauges.set(
        f.name,
        new Gauge({ name: f.name, help: f.help, labelNames: labelsOf(f), registers: [this.registry] }),
      );
    // Pipeline counters are cumulative per run; what is added is the increase since the last read (all of it after
    // a restart, when they start again below what was seen).
    const seen = new Map<string, number>();
    const sync = (stats: PipelineStats) => {
      for (const [key, value] of Object.entries(stats.counters))
        for (const f of FAMILIES) {
          const labels = match(f, key);
          if (labels === undefined) continue;
          const before = seen.get(key) ?? 0;
          const delta = value >= before ? value - before : value;
          if (delta > 0) counters.get(f.name)!.inc(labels, delta);
          seen.set(key, value);
          break;
        }
      for (const g of gauges.values()) g.reset();
      for (const [key, value] of Object.entries(stats.gauges ?? {}))
        for (const f of GAUGES) {
          const labels = match(f, key);
          if (labels !== undefined) gauges.get(f.name)!.set(labels, value);
        }
    };
  }
}
