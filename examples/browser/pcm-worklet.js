// AudioWorklet: the AudioContext runs at 16 kHz, so the browser resamples the microphone; this cuts the samples into
// 10 ms PCM16 frames (160 samples) and posts them with their running sample count, from which time is derived.
const FRAME = 160;

class PcmFramer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(FRAME);
    this.filled = 0;
    this.samplesBefore = 0;
  }
  process(inputs) {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === FRAME) {
        // Transferring the buffer detaches this.frame, so count with the constant.
        this.port.postMessage({ samplesBefore: this.samplesBefore, pcm: this.frame.buffer }, [
          this.frame.buffer,
        ]);
        this.samplesBefore += FRAME;
        this.frame = new Int16Array(FRAME);
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor('pcm-framer', PcmFramer);
