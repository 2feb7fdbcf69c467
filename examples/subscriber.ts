// A small typed client: subscribes to braid's predictions and prints them.
//   npx tsx examples/subscriber.ts [ws://127.0.0.1:8080] [stream ...]
// With a token: BRAID_TOKEN=... npx tsx examples/subscriber.ts ws://host:8080
import WebSocket from 'ws';
import type { ServerMessage } from '../src/server/protocol.js';

const [url = 'ws://127.0.0.1:8080', ...streams] = process.argv.slice(2);
const token = process.env['BRAID_TOKEN'];
const ws = new WebSocket(
  `${url.replace(/\/$/, '')}/subscribe`,
  token ? { headers: { authorization: `Bearer ${token}` } } : {},
);

ws.on('open', () => ws.send(JSON.stringify({ subscribe: streams.length > 0 ? streams : '*' })));
ws.on('message', (data) => {
  const message = JSON.parse(String(data)) as ServerMessage;
  switch (message.type) {
    case 'welcome':
      console.log(
        `connected: protocol v${message.version}, labels ${message.labels.join(', ')}, live streams ${message.streams.join(', ') || 'none'}`,
      );
      break;
    case 'prediction': {
      const scores = Object.entries(message.scores)
        .map(([label, score]) => `${label} ${score.toFixed(2)}`)
        .join('  ');
      const dropped = message.dropped ? `  (${message.dropped} dropped: this client is too slow)` : '';
      console.log(
        `${message.streamId} #${message.windowIndex} ${scores}  latency ${message.latencyMs.toFixed(0)} ms${dropped}`,
      );
      break;
    }
    case 'stream':
      console.log(`stream ${message.streamId} ${message.event}`);
      break;
    case 'error':
      console.error(`server error ${message.code}: ${message.message}`);
      break;
  }
});
ws.on('close', (code, reason) => {
  console.log(`closed ${code} ${String(reason)}`);
  process.exit(code === 1000 ? 0 : 1);
});
ws.on('error', (error) => {
  console.error(`cannot connect to ${url}: ${error.message}`);
  process.exit(1);
});
