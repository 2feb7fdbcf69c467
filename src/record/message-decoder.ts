import { protobufFromBinaryDescriptor } from '@mcap/support';
import type { DecodedMessage } from './codec.js';
import { causeText } from './errors.js';
import type { McapChannel, McapSchema } from './message-source.js';
import { SCHEMA_ENCODING, SCHEMAS, type SchemaName } from './schemas.js';

/** The fields of each schema braid reads (see codec.ts): the rest are skipped when decoding protobuf. */
const READ_FIELDS: Readonly<Record<SchemaName, readonly string[]>> = {
  'foxglove.RawAudio': ['data', 'format', 'sample_rate', 'number_of_channels'],
  'foxglove.RawImage': ['width', 'height', 'encoding', 'step', 'data'],
  'foxglove.CompressedImage': ['data', 'format'],
  'foxglove.Log': ['message'],
  'braid.Text': ['text'],
  'braid.Labels': ['labels'],
  'braid.Prediction': ['streamId', 'windowIndex', 'windowStart', 'windowEnd', 'scores', 'present', 'model'],
  'braid.LabelEvent': ['streamId', 'label', 'state', 'time', 'score', 'windowIndex', 'closed', 'model'],
};

/** Turns one message's bytes into its fields; throws a TypeError saying what was wrong. */
export type MessageDecoder = (data: Uint8Array) => DecodedMessage;

function jsonDecoder(name: SchemaName): MessageDecoder {
  const { validator } = SCHEMAS[name];
  return (data) => {
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
    } catch (error) {
      throw new TypeError(`${name} message is not JSON (${(error as Error).message})`);
    }
    const result = validator.safeParse(value);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new TypeError(
        `${name} message does not match its schema: ${issue?.path.join('.')} ${issue?.message}`,
      );
    }
    return result.data as DecodedMessage;
  };
}

/**
 * A decoder for the messages of a channel whose schema braid knows by name, or why there is none. JSON messages are
 * checked against braid's copy of the schema (the same JSON Schema it writes); protobuf messages are decoded with the
 * file's own FileDescriptorSet (protobufjs), so a file from another tool is read with the schema it was written with.
 * `cache` keeps one decoder per schema record.
 */
export function messageDecoder(
  name: SchemaName,
  channel: McapChannel,
  schema: McapSchema,
  cache: Map<number, MessageDecoder>,
): MessageDecoder | string {
  const encoding = channel.messageEncoding;
  if (encoding !== 'json' && encoding !== 'protobuf')
    return `its message encoding is "${encoding}", braid reads protobuf and json`;
  if (schema.encoding !== SCHEMA_ENCODING[encoding])
    return `its schema encoding is "${schema.encoding}", ${encoding} messages need "${SCHEMA_ENCODING[encoding]}"`;
  const known = cache.get(schema.id);
  if (known) return known;
  let decoder: MessageDecoder;
  if (encoding === 'json') decoder = jsonDecoder(name);
  else {
    try {
      const type = protobufFromBinaryDescriptor(schema.data).lookupType(name);
      // This root is ours alone: fields braid never reads (the timestamp repeats the log time, frame_id, a Log's
      // file and line) are taken out of its types, so decoding skips their bytes instead of building objects.
      for (const field of [...type.fieldsArray])
        if (!READ_FIELDS[name].includes(field.name)) type.remove(field);
      decoder = (data) => type.decode(data) as unknown as DecodedMessage;
    } catch (error) {
      return `its protobuf schema ${name} cannot be read: ${causeText(error)}`;
    }
  }
  cache.set(schema.id, decoder);
  return decoder;
}
