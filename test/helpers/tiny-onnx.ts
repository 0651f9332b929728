/**
 * Tiny ONNX models written directly with onnx-proto (not with the project's own ONNX writer, so the loading
 * path is tested against independently built files). Each has a few hand-chosen weights so the expected
 * embedding can be worked out by hand in the test.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const T = onnx.AttributeProto.AttributeType;

type Dim = number | string;

function valueInfo(name: string, dims: Dim[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function floats(name: string, dims: number[], values: number[]): OnnxTypes.ITensorProto {
  return { name, dims, dataType: FLOAT, floatData: values };
}

function int64s(name: string, values: number[]): OnnxTypes.ITensorProto {
  return { name, dims: [values.length], dataType: INT64, int64Data: values };
}

function node(opType: string, input: string[], output: string[], attrs: OnnxTypes.IAttributeProto[] = []): OnnxTypes.INodeProto {
  return { opType, input, output, attribute: attrs, name: output[0] };
}

function ints(name: string, values: number[]): OnnxTypes.IAttributeProto {
  return { name, type: T.INTS, ints: values };
}

function int(name: string, value: number): OnnxTypes.IAttributeProto {
  return { name, type: T.INT, i: value };
}

function model(graph: OnnxTypes.IGraphProto, opset = 13): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, producerName: 'mir3d-test', opsetImport: [{ domain: '', version: opset }], graph }),
  ).finish();
}

/** Conv 1×1 weights of `conv1x1Gap`: out[o] = Σ_c W[o][c] · x[c] + B[o]. */
export const CONV_W = [
  [1, 0, 0],
  [0, 2, 0],
  [0, 0, 3],
  [1, -1, 0.5],
];
export const CONV_B = [0.1, -0.2, 0.3, 0];

/** [batch,3,H,W] → 1×1 conv (4 outputs) → GlobalAveragePool → Flatten → 'embedding' [batch,4]. */
export function conv1x1Gap(sizePx = 8, batch: Dim = 'batch', channels = 3, bias: number[] = CONV_B): Uint8Array {
  const w = CONV_W.map((row) => row.slice(0, channels));
  return model({
    name: 'conv1x1_gap',
    node: [
      node('Conv', ['pixel_values', 'W', 'B'], ['conv'], [ints('kernel_shape', [1, 1])]),
      node('GlobalAveragePool', ['conv'], ['pooled']),
      node('Flatten', ['pooled'], ['embedding'], [int('axis', 1)]),
    ],
    initializer: [floats('W', [4, channels, 1, 1], w.flat()), floats('B', [4], bias)],
    input: [valueInfo('pixel_values', [batch, channels, sizePx, sizePx])],
    output: [valueInfo('embedding', [batch, 4])],
  });
}

/** NHWC [batch,H,W,3] → ReduceMean over H, W → 'pooled' [batch,3]: the per-channel means. */
export function nhwcChannelMeans(sizePx = 8): Uint8Array {
  return model({
    name: 'nhwc_means',
    node: [node('ReduceMean', ['input'], ['pooled'], [ints('axes', [1, 2]), int('keepdims', 0)])],
    input: [valueInfo('input', ['batch', sizePx, sizePx, 3])],
    output: [valueInfo('pooled', ['batch', 3])],
  });
}

/** [batch,3,4,4] → tokens [batch,16,3] ('last_hidden_state'): token t is pixel t's three channel values.
 * With `staticShape` false the reshape target is computed from the input's runtime shape, so the output's
 * token and width dimensions are unknown until the model runs. */
export function tokenSequence(staticShape = true): Uint8Array {
  const reshape = staticShape
    ? [node('Reshape', ['pixel_values', 'shape'], ['flat'])]
    : [
        node('Shape', ['pixel_values'], ['input_shape']),
        node('Slice', ['input_shape', 'zero', 'two'], ['batch_and_channels']),
        node('Concat', ['batch_and_channels', 'minus_one'], ['target'], [int('axis', 0)]),
        node('Reshape', ['pixel_values', 'target'], ['flat']),
      ];
  return model({
    name: 'tokens',
    node: [...reshape, node('Transpose', ['flat'], ['last_hidden_state'], [ints('perm', [0, 2, 1])])],
    initializer: staticShape ? [int64s('shape', [0, 3, 16])] : [int64s('zero', [0]), int64s('two', [2]), int64s('minus_one', [-1])],
    input: [valueInfo('pixel_values', ['batch', 3, 4, 4])],
    output: [staticShape ? valueInfo('last_hidden_state', ['batch', 16, 3]) : { name: 'last_hidden_state', type: { tensorType: { elemType: FLOAT } } }],
  });
}

/** [batch,3,4,4] → outputs 'feature_map' (= relu(x), [batch,3,4,4]) and 'first_pixel' ([batch,3], x at 0,0). */
export function twoOutputs(): Uint8Array {
  return model({
    name: 'two_outputs',
    node: [
      node('Relu', ['pixel_values'], ['feature_map']),
      node('Slice', ['pixel_values', 'starts', 'ends', 'axes'], ['corner']),
      node('Flatten', ['corner'], ['first_pixel'], [int('axis', 1)]),
    ],
    initializer: [int64s('starts', [0, 0]), int64s('ends', [1, 1]), int64s('axes', [2, 3])],
    input: [valueInfo('pixel_values', ['batch', 3, 4, 4])],
    output: [valueInfo('feature_map', ['batch', 3, 4, 4]), valueInfo('first_pixel', ['batch', 3])],
  });
}

/** [batch,2,8,8]: two channels, which no CT preprocessing gives. */
export function twoChannelInput(): Uint8Array {
  return model({
    name: 'two_channels',
    node: [node('GlobalAveragePool', ['x'], ['p']), node('Flatten', ['p'], ['y'], [int('axis', 1)])],
    input: [valueInfo('x', ['batch', 2, 8, 8])],
    output: [valueInfo('y', ['batch', 2])],
  });
}

/** [batch,64]: a flat vector input, not an image. */
export function flatInput(): Uint8Array {
  return model({
    name: 'flat',
    node: [node('Relu', ['x'], ['y'])],
    input: [valueInfo('x', ['batch', 64])],
    output: [valueInfo('y', ['batch', 64])],
  });
}

// ---------------------------------------------------------------------------------------------------------
// A tiny CLIP-like pair. The image tower pools each channel (the three HU windows) and projects the three
// means into D dims; the text tower sums its tokens' 3-d word vectors (masked) and projects them with its own
// matrix. When word w's vector points along window c and both projections agree, a caption naming w lands
// near images bright in window c: the pair shares one space, as a real CLIP pair does after training.

const INT64_TYPE = (name: string, dims: Dim[]): OnnxTypes.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType: INT64, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});

function imageTowerParts(projection: number[][], sizePx: number, bias?: number[]): Pick<OnnxTypes.IGraphProto, 'node' | 'initializer' | 'input' | 'output'> {
  const dim = projection[0].length;
  return {
    node: [
      node('GlobalAveragePool', ['pixel_values'], ['img_pooled']),
      node('Flatten', ['img_pooled'], ['img_flat'], [int('axis', 1)]),
      node('MatMul', ['img_flat', 'visual_projection'], ['img_projected']),
      node('Add', ['img_projected', 'visual_bias'], ['image_embeds']),
    ],
    initializer: [floats('visual_projection', [projection.length, dim], projection.flat()), floats('visual_bias', [dim], bias ?? new Array<number>(dim).fill(0))],
    input: [valueInfo('pixel_values', ['batch', 3, sizePx, sizePx])],
    output: [valueInfo('image_embeds', ['batch', projection[0].length])],
  };
}

function textTowerParts(wordVectors: number[][], projection: number[][], sequence: Dim): Pick<OnnxTypes.IGraphProto, 'node' | 'initializer' | 'input' | 'output'> {
  return {
    node: [
      node('Gather', ['token_embedding', 'input_ids'], ['tok']),
      node('Cast', ['attention_mask'], ['mask_f'], [int('to', FLOAT)]),
      node('Unsqueeze', ['mask_f', 'axis_two'], ['mask_3d']),
      node('Mul', ['tok', 'mask_3d'], ['tok_masked']),
      node('ReduceSum', ['tok_masked', 'axis_one'], ['txt_sum'], [int('keepdims', 0)]),
      node('MatMul', ['txt_sum', 'text_projection'], ['text_embeds']),
    ],
    initializer: [
      floats('token_embedding', [wordVectors.length, wordVectors[0].length], wordVectors.flat()),
      floats('text_projection', [projection.length, projection[0].length], projection.flat()),
      int64s('axis_one', [1]),
      int64s('axis_two', [2]),
    ],
    input: [INT64_TYPE('input_ids', ['batch', sequence]), INT64_TYPE('attention_mask', ['batch', sequence])],
    output: [valueInfo('text_embeds', ['batch', projection[0].length])],
  };
}

/** vision_model.onnx: pixel_values [N,3,S,S] → image_embeds [N,D] = channel means · projection (3×D) + bias. */
export function tinyClipImageTower(projection: number[][], sizePx = 8, bias?: number[]): Uint8Array {
  return model({ name: 'tiny_clip_vision', ...imageTowerParts(projection, sizePx, bias) });
}

/** text_model.onnx: input_ids, attention_mask [N,T] → text_embeds [N,D] = Σ masked word vectors (V×3) · projection (3×D).
 * `sequence` fixes T (as exports with a static context do) or leaves it dynamic. */
export function tinyClipTextTower(wordVectors: number[][], projection: number[][], sequence: Dim = 'sequence'): Uint8Array {
  return model({ name: 'tiny_clip_text', ...textTowerParts(wordVectors, projection, sequence) });
}

/** model.onnx with both towers and both inputs, as Optimum exports a CLIPModel. */
export function tinyClipCombined(wordVectors: number[][], textProjection: number[][], imageProjection: number[][], sizePx = 8): Uint8Array {
  const image = imageTowerParts(imageProjection, sizePx);
  const text = textTowerParts(wordVectors, textProjection, 'sequence');
  return model({
    name: 'tiny_clip',
    node: [...(text.node ?? []), ...(image.node ?? [])],
    initializer: [...(text.initializer ?? []), ...(image.initializer ?? [])],
    input: [(text.input ?? [])[0], image.input?.[0] ?? {}, (text.input ?? [])[1]],
    output: [...(text.output ?? []), ...(image.output ?? [])],
  });
}

/** A WordPiece tokenizer.json (BERT layout, lower-casing) over `words`, after [PAD] [UNK] [CLS] [SEP]. */
export function wordPieceTokenizerJson(words: string[]): string {
  const vocab: Record<string, number> = {};
  ['[PAD]', '[UNK]', '[CLS]', '[SEP]', ...words].forEach((w, i) => (vocab[w] = i));
  const special = (content: string): Record<string, unknown> => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]'].map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  });
}
