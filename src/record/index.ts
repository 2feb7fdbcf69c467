export { RecordingError, type RecordingWarning, type WarningListener, WriteBacklogError } from './errors.js';
export { type RecordToOptions, recordTo } from './record-to.js';
export { McapRecorder, type RecorderOptions, type RecorderStats } from './recorder.js';
export {
  type ChannelInfo,
  type EventQuery,
  type OpenOptions,
  type ReadOptions,
  type RecordingInfo,
  RecordingReader,
  readPredictions,
  readRecording,
  recordingInfo,
  type StreamInfo,
} from './recording-reader.js';
export { type ReplayOptions, replayInputs, replayRecording } from './replay.js';
export { CHANNEL_KEY, FORMAT_VERSION, type SchemaName, topicFor } from './schemas.js';
