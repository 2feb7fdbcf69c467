// The stage of the data flow a profiled function belongs to, from its file (and, for V8's own, its name): shared by
// bench/profile.ts (V8's sampling profiler) and bench/perf-profile.ts (Linux perf, on-CPU samples only).

/** The stage a sampled function belongs to, from its file (and, for V8's own, its name). */
export function stageOf({
  functionName,
  url,
}: {
  readonly functionName: string;
  readonly url: string;
}): string {
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)') return 'V8 and native (program)';
  const rules: [RegExp, string][] = [
    [/node_modules\/ws\//, 'WebSocket framing (ws)'],
    [
      /src\/server\/(protocol|ingest-session|producer-connection|request-guard)/,
      'protocol parsing and validation',
    ],
    [/src\/server\/(subscriber|reply-limiter|heartbeat)/, 'fan-out to subscribers'],
    [/src\/server\//, 'server, other'],
    [/node_modules\/zod\/|src\/core\/frame/, 'protocol parsing and validation'],
    [/src\/core\//, 'event validation (core)'],
    [/src\/shards\//, 'hand-off between threads (input batches, shard messages)'],
    [/src\/align\//, 'alignment'],
    [/node_modules\/sharp\/|src\/features\/(decode|image)/, 'decode'],
    [/src\/features\/|libsamplerate/, 'features'],
    [/src\/model\/|@tensorflow/, 'model step'],
    [/src\/pipeline\//, 'pipeline plumbing'],
    [/node_modules\/rxjs\//, 'RxJS operators'],
    [/node_modules\/(pino|prom-client)\//, 'logs and metrics'],
    [/^wasm:/, 'features'], // the log-mel kernel (WebAssembly SIMD) and libsamplerate
    [/^node:|^internal\//, 'Node core (net, streams, timers)'],
  ];
  for (const [re, stage] of rules) if (re.test(url)) return stage;
  if (url === '')
    return functionName === 'stringify' || functionName === 'parse' ? 'JSON' : 'V8 and native (program)';
  return 'other';
}
