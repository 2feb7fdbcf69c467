// A subscriber with braid's client library: prints the predictions of some streams (or all), reconnecting by itself.
//   npx tsx examples/subscriber.ts [http://127.0.0.1:8080] [stream ...]
// With a token: BRAID_TOKEN=... npx tsx examples/subscriber.ts http://host:8080
import { subscribe } from 'braid/client';

const [url = 'http://127.0.0.1:8080', ...streams] = process.argv.slice(2);
const subscription = subscribe({
  url,
  token: process.env['BRAID_TOKEN'],
  streams: streams.length > 0 ? streams : '*',
  onMessage: (message) => {
    if (message.type === 'welcome')
      console.log(
        `connected: protocol v${message.version}, model ${message.model?.id ?? '?'}, labels ${message.labels.join(', ')}, live streams ${message.streams.join(', ') || 'none'}`,
      );
    else if (message.type === 'stream') console.log(`stream ${message.streamId} ${message.event}`);
    else if (message.type === 'error') console.error(`server error ${message.code}: ${message.message}`);
  },
  onStatus: (status, detail) => {
    if (status === 'reconnecting') console.log(`reconnecting${detail ? ` ${detail}` : ''}`);
  },
});
process.once('SIGINT', () => subscription.close());

for await (const p of subscription) {
  const scores = Object.entries(p.scores)
    .map(([label, score]) => `${label} ${score.toFixed(2)}`)
    .join('  ');
  const dropped = p.dropped ? `  (${p.dropped} dropped: this client is too slow)` : '';
  console.log(`${p.streamId} #${p.windowIndex} ${scores}  latency ${p.latencyMs.toFixed(0)} ms${dropped}`);
}
