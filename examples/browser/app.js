// braid demo page: streams the microphone (16 kHz PCM16), the camera (small raw grayscale frames) and typed text to
// /ingest, subscribes to predictions, and charts every label. Protocol: docs/protocol.md.
const $ = (id) => document.getElementById(id);
const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const wsUrl = (path) =>
  `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}${location.search}`;

const state = {
  streamId: `browser-${Math.random().toString(36).slice(2, 8)}`,
  labels: [],
  inputs: { audioSampleRate: 16000, video: { width: 64, height: 48, format: 'gray' } },
  watching: null,
  series: { t: [], scores: [] },
  count: 0,
  dropped: 0,
  chart: null,
  ingest: null,
  stopCapture: null,
};
window.__braid = state; // for tests and curious users

function setStatus(text) {
  $('status').textContent = text;
}

function frameHeader(modality, time, seq, payloadBytes) {
  const out = new Uint8Array(16 + payloadBytes);
  const view = new DataView(out.buffer);
  view.setUint8(0, 1);
  view.setUint8(1, modality === 'audio' ? 1 : 2);
  view.setFloat64(4, time, true);
  view.setUint32(12, seq, true);
  return out;
}

function resetChart() {
  state.series = { t: [], scores: state.labels.map(() => []) };
  state.count = 0;
  $('chart').innerHTML = '';
  const series = [
    {},
    ...state.labels.map((label, i) => ({
      label,
      stroke: `hsl(${(i * 360) / state.labels.length}, 65%, 45%)`,
      width: 2,
    })),
  ];
  state.chart = new uPlot(
    {
      width: Math.max(400, $('chart').clientWidth || 700),
      height: 320,
      series,
      scales: { y: { range: [0, 1] } },
      axes: [{}, { label: 'score' }],
    },
    [[], ...state.labels.map(() => [])],
    $('chart'),
  );
}

function onPrediction(p) {
  if (p.streamId !== state.watching) return;
  state.count++;
  if (p.dropped) state.dropped += p.dropped;
  const t = p.windowEnd / 1e6;
  state.series.t.push(t);
  state.labels.forEach((label, i) => {
    state.series.scores[i].push(p.scores[label] ?? null);
  });
  if (state.series.t.length > 240) {
    state.series.t.shift();
    for (const s of state.series.scores) s.shift();
  }
  state.chart?.setData([state.series.t, ...state.series.scores]);
  $('latency').textContent = `${p.latencyMs.toFixed(0)} ms`;
  $('count').textContent = String(state.count);
  $('dropped').textContent = String(state.dropped);
  $('scores').innerHTML = state.labels
    .map(
      (l) =>
        `<span>${l}</span><div class="bar" style="width:${Math.round((p.scores[l] ?? 0) * 100)}%"></div><span>${(p.scores[l] ?? 0).toFixed(2)}</span>`,
    )
    .join('');
}

function watch(streamId) {
  state.watching = streamId;
  state.subscriber?.send(JSON.stringify({ subscribe: [streamId] }));
  resetChart();
}

function addStreamOption(id) {
  if ([...$('watch').options].some((o) => o.value === id)) return;
  const option = new Option(id === state.streamId ? `${id} (you)` : id, id);
  $('watch').add(option);
}

function connectSubscriber() {
  const ws = new WebSocket(wsUrl('/subscribe'));
  state.subscriber = ws;
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === 'welcome') {
      state.labels = m.labels;
      m.streams.forEach(addStreamOption);
      if (!state.watching && m.streams.length > 0) watch(m.streams[0]);
      else if (state.watching) watch(state.watching);
    } else if (m.type === 'stream' && m.event === 'opened') addStreamOption(m.streamId);
    else if (m.type === 'prediction') onPrediction(m);
    else if (m.type === 'error') $('error').textContent = `server: ${m.code}: ${m.message}`;
  };
  ws.onclose = () => setTimeout(connectSubscriber, 1000);
}

async function start() {
  $('start').disabled = true;
  $('error').textContent = '';
  try {
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1 },
      video: { width: 320, height: 240 },
    });
    const ingest = new WebSocket(wsUrl('/ingest'));
    ingest.binaryType = 'arraybuffer';
    await new Promise((resolve, reject) => {
      ingest.onopen = resolve;
      ingest.onerror = () => reject(new Error('could not connect to /ingest'));
    });
    ingest.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.type === 'error') $('error').textContent = `ingest: ${m.code}: ${m.message}`;
    };
    const { width, height } = state.inputs.video;
    ingest.send(
      JSON.stringify({
        type: 'hello',
        version: 1,
        streamId: state.streamId,
        modalities: ['audio', 'video', 'text'],
        audio: { sampleRate: 16000, format: 'pcm16' },
        video: { format: 'gray', width, height },
      }),
    );
    state.ingest = ingest;
    const send = (bytes) => {
      // Live data is worth nothing late: skip a frame rather than queue behind a congested socket.
      if (ingest.readyState === WebSocket.OPEN && ingest.bufferedAmount < 1 << 20) ingest.send(bytes);
    };

    // Audio: 16 kHz context; time from the sample count since the first frame.
    const audio = new AudioContext({ sampleRate: 16000 });
    await audio.audioWorklet.addModule('/pcm-worklet.js');
    const node = new AudioWorkletNode(audio, 'pcm-framer');
    audio.createMediaStreamSource(media).connect(node);
    let audioStart = null;
    let audioSeq = 0;
    node.port.onmessage = ({ data }) => {
      audioStart ??= nowMicros() - Math.round(((data.samplesBefore + 160) * 1e6) / 16000);
      const time = audioStart + Math.floor((data.samplesBefore * 1e6) / 16000);
      const pcm = new Uint8Array(data.pcm);
      const frame = frameHeader('audio', time, audioSeq++, pcm.byteLength);
      frame.set(pcm, 16);
      send(frame);
    };

    // Video: draw the camera into a small canvas at 10 fps and send raw grayscale.
    $('video').srcObject = media;
    const canvas = $('thumb');
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    let videoSeq = 0;
    const timer = setInterval(() => {
      if ($('video').readyState < 2) return;
      const time = nowMicros();
      ctx.drawImage($('video'), 0, 0, width, height);
      const rgba = ctx.getImageData(0, 0, width, height).data;
      const frame = frameHeader('video', time, videoSeq++, width * height);
      const image = ctx.getImageData(0, 0, width, height);
      for (let i = 0, j = 16; i < rgba.length; i += 4, j++) {
        const gray = (rgba[i] * 77 + rgba[i + 1] * 150 + rgba[i + 2] * 29) >> 8;
        frame[j] = gray;
        image.data[i] = image.data[i + 1] = image.data[i + 2] = gray;
      }
      ctx.putImageData(image, 0, 0); // show exactly what the model gets
      send(frame);
    }, 100);

    // Text: what was typed since the last event, every 250 ms while typing, and on Enter.
    let textSeq = 0;
    let sent = '';
    const flushText = () => {
      const value = $('text').value;
      if (value === sent) return;
      const typed = value.startsWith(sent) ? value.slice(sent.length) : value;
      sent = value;
      if (typed.trim() === '') return;
      send(JSON.stringify({ type: 'text', time: nowMicros(), seq: textSeq++, text: typed }));
    };
    const textTimer = setInterval(flushText, 250);
    $('text').onkeydown = (e) => {
      if (e.key !== 'Enter') return;
      flushText();
      $('text').value = '';
      sent = '';
    };

    state.stopCapture = () => {
      clearInterval(timer);
      clearInterval(textTimer);
      audio.close();
      for (const track of media.getTracks()) track.stop();
      ingest.send(JSON.stringify({ type: 'close' }));
      ingest.close();
    };
    addStreamOption(state.streamId);
    $('watch').value = state.streamId;
    watch(state.streamId);
    $('stop').disabled = false;
    setStatus(`streaming as ${state.streamId}`);
  } catch (error) {
    $('error').textContent = `${error.name ?? 'Error'}: ${error.message}`;
    $('start').disabled = false;
  }
}

function stop() {
  state.stopCapture?.();
  state.stopCapture = null;
  $('stop').disabled = true;
  $('start').disabled = false;
  setStatus('stopped');
}

async function init() {
  try {
    const info = await (await fetch(`/api/streams${location.search}`)).json();
    state.labels = info.labels;
    if (info.inputs) state.inputs = info.inputs;
  } catch {
    // the welcome message carries the labels too
  }
  resetChart();
  connectSubscriber();
  $('start').onclick = start;
  $('stop').onclick = stop;
  $('watch').onchange = () => watch($('watch').value);
}

init();
