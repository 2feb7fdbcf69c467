import { InteropError } from './errors.js';

/** One layer of a model read from a Keras / tfjs-layers topology, a wrapper (TimeDistributed) unwrapped. */
export interface KerasLayer {
  /** The layer's class, e.g. `Dense`; for `TimeDistributed(Dense)` the wrapped class. */
  readonly className: string;
  /** The name weights are stored under (the outer layer's name for a wrapped one). */
  readonly name: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** `TimeDistributed` when the layer came wrapped. */
  readonly wrapper?: string;
  /** How the layer is shown in messages: `"gru" (GRU)`, `"td" (TimeDistributed(Dense))`. */
  readonly label: string;
}

/** A model as a chain of layers from its input to its output. */
export interface KerasChain {
  /** Shape of the model input including the batch axis, null for free axes, when the topology says. */
  readonly inputShape?: readonly (number | null)[];
  readonly layers: readonly KerasLayer[];
  readonly kerasVersion?: string;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const topologyError = (message: string, layer?: string): InteropError =>
  new InteropError(layer ? 'unsupported_layer' : 'bad_file', message, layer);

function layerOf(raw: unknown, where: string): KerasLayer {
  if (!isObject(raw) || typeof raw['class_name'] !== 'string' || !isObject(raw['config']))
    throw topologyError(`${where}: a layer entry needs class_name and config`);
  const className = raw['class_name'];
  const config = raw['config'];
  const name =
    typeof config['name'] === 'string'
      ? config['name']
      : typeof raw['name'] === 'string'
        ? raw['name']
        : where;
  if (className === 'TimeDistributed') {
    const inner = config['layer'];
    if (!isObject(inner) || typeof inner['class_name'] !== 'string' || !isObject(inner['config']))
      throw topologyError(`layer "${name}" (TimeDistributed) has no wrapped layer`, name);
    const innerClass = inner['class_name'];
    return {
      className: innerClass,
      name,
      config: inner['config'],
      wrapper: 'TimeDistributed',
      label: `"${name}" (TimeDistributed(${innerClass}))`,
    };
  }
  return { className, name, config, label: `"${name}" (${className})` };
}

/** Shape from a layer config: batch_input_shape (Keras 2, tfjs), batch_shape (Keras 3). */
function configShape(config: Readonly<Json>): (number | null)[] | undefined {
  const shape = config['batch_input_shape'] ?? config['batch_shape'];
  return Array.isArray(shape) ? (shape as (number | null)[]) : undefined;
}

/** The inbound layer names of one node, Keras 2 (`[[name, 0, 0, {}], …]`) or Keras 3 (`{args: [keras tensors]}`). */
function inboundNames(node: unknown): string[] {
  if (Array.isArray(node)) return node.map((t) => (Array.isArray(t) ? String(t[0]) : String(t)));
  if (isObject(node) && Array.isArray(node['args'])) {
    const names: string[] = [];
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(visit);
      else if (isObject(v)) {
        const history = isObject(v['config']) ? v['config']['keras_history'] : undefined;
        if (v['class_name'] === '__keras_tensor__' && Array.isArray(history)) names.push(String(history[0]));
      }
    };
    visit(node['args']);
    return names;
  }
  return [];
}

/** A functional model's layers in order, if they form one chain from the single input to the single output. */
function functionalChain(config: Json): { layers: Json[]; input?: Json } {
  const raw = config['layers'];
  if (!Array.isArray(raw)) throw topologyError('a functional model config needs layers');
  const byName = new Map<string, Json>();
  const next = new Map<string, string[]>();
  for (const l of raw) {
    if (!isObject(l)) throw topologyError('a functional model layer must be an object');
    const name = String(l['name'] ?? (isObject(l['config']) ? l['config']['name'] : ''));
    byName.set(name, l);
    const nodes = Array.isArray(l['inbound_nodes']) ? l['inbound_nodes'] : [];
    if (nodes.length > 1)
      throw topologyError(
        `layer "${name}" is called ${nodes.length} times (shared layer): braid maps a chain of layers, each used once`,
        name,
      );
    const from = nodes.length === 1 ? inboundNames(nodes[0]) : [];
    if (from.length > 1)
      throw topologyError(
        `layer "${name}" (${String(l['class_name'])}) takes ${from.length} inputs (${from.join(', ')}): braid maps a chain of layers, one input each`,
        name,
      );
    for (const f of from) next.set(f, [...(next.get(f) ?? []), name]);
  }
  const inputs = raw.filter((l) => isObject(l) && l['class_name'] === 'InputLayer') as Json[];
  if (inputs.length !== 1)
    throw topologyError(`the model has ${inputs.length} inputs; braid feeds one, the fused windows`);
  const ordered: Json[] = [];
  let at: string | undefined = String(
    (inputs[0] as Json)['name'] ?? ((inputs[0] as Json)['config'] as Json)['name'],
  );
  const seen = new Set<string>();
  while (at !== undefined) {
    if (seen.has(at)) throw topologyError(`the layers loop back at "${at}"`);
    seen.add(at);
    const layer = byName.get(at);
    if (layer === undefined)
      throw topologyError(`an inbound node names a layer "${at}" the model does not have`);
    ordered.push(layer);
    const outs: string[] = next.get(at) ?? [];
    if (outs.length > 1)
      throw topologyError(
        `layer "${at}" feeds ${outs.length} layers (${outs.join(', ')}): braid maps a chain of layers without branches`,
        at,
      );
    at = outs[0];
  }
  if (ordered.length !== raw.length) {
    const left = [...byName.keys()].filter((n) => !seen.has(n));
    throw topologyError(
      `layers ${left.join(', ')} are not on the path from the input to the output`,
      left[0],
    );
  }
  return { layers: ordered.slice(1), input: inputs[0] };
}

/**
 * The layers of a `modelTopology` in order, for the shapes tensorflowjs_converter (Keras 2 `model_config`,
 * Keras 3) and tfjs-layers write: a `Sequential` model, or a `Functional`/`Model` one whose layers form one chain.
 * `InputLayer` is dropped (its shape kept). Throws InteropError naming what cannot be read.
 */
export function parseTopology(topology: unknown): KerasChain {
  if (!isObject(topology)) throw topologyError('modelTopology must be an object');
  const kerasVersion = typeof topology['keras_version'] === 'string' ? topology['keras_version'] : undefined;
  const model = isObject(topology['model_config']) ? topology['model_config'] : topology;
  const className = model['class_name'];
  const config = model['config'];
  let raw: unknown[];
  let inputConfig: Json | undefined;
  if (className === 'Sequential') {
    // Keras before 2.2 wrote a Sequential config as the bare list of layers.
    const layers = Array.isArray(config) ? config : isObject(config) ? config['layers'] : undefined;
    if (!Array.isArray(layers)) throw topologyError('a Sequential model config needs layers');
    raw = layers;
    const first = raw[0];
    if (isObject(first) && first['class_name'] === 'InputLayer') {
      inputConfig = isObject(first['config']) ? first['config'] : undefined;
      raw = raw.slice(1);
    }
    if (inputConfig === undefined && isObject(config) && Array.isArray(config['build_input_shape']))
      inputConfig = { batch_input_shape: config['build_input_shape'] };
  } else if (className === 'Functional' || className === 'Model') {
    if (!isObject(config)) throw topologyError(`a ${className} model config must be an object`);
    const chain = functionalChain(config);
    raw = chain.layers;
    inputConfig = isObject(chain.input?.['config']) ? (chain.input['config'] as Json) : undefined;
  } else
    throw topologyError(
      `the model is a ${String(className)}; braid imports a Sequential model or a functional one that is a chain of layers`,
    );
  const layers = raw.map((l, i) => layerOf(l, `layer ${i}`));
  for (const l of layers)
    if (l.className === 'Sequential' || l.className === 'Functional' || l.className === 'Model')
      throw topologyError(
        `layer ${l.label} is a model inside the model; flatten it into one chain of layers`,
        l.name,
      );
  const inputShape =
    (inputConfig && configShape(inputConfig)) ?? (layers[0] ? configShape(layers[0].config) : undefined);
  return { layers, ...(inputShape ? { inputShape } : {}), ...(kerasVersion ? { kerasVersion } : {}) };
}

/**
 * An activation name as Keras, Keras 3 (possibly a serialized function object) or tfjs write it, lowercased without
 * underscores: `hardSigmoid`, `hard_sigmoid` → `hardsigmoid`; null/None → `linear`.
 */
export function activationName(value: unknown): string {
  if (value === null || value === undefined) return 'linear';
  if (typeof value === 'string') return value.replace(/_/g, '').toLowerCase();
  if (isObject(value)) {
    if (typeof value['config'] === 'string') return activationName(value['config']);
    if (typeof value['class_name'] === 'string') return activationName(value['class_name']);
  }
  return String(value);
}
