/**
 * Text features for a text space learned from an archive's own captions (no CLIP model needed): hashed word
 * uni- and bigrams and word-internal character trigrams, with two things made explicit that bag-of-words
 * models get wrong in radiology text:
 * - sizes: "5 cm", "2.44 centimeters", "18 mm", "larger than 5 cm", "< 2cm" become threshold features
 *   (size ≥ 1, 2, 3, 4, 5, 6, 8, 10 cm, or ≤ for upper bounds), so "a 6 cm tumour" and "larger than 5 cm"
 *   share features and "1 cm" and "10 cm" do not; counts ("7 tumors", "multiple", "single") likewise;
 * - negation: words after a cue ("no", "without", "absence of", "negative for", "free of") up to the end of
 *   the clause get a NOT_ prefix (NegEx-style scope), so "no tumour" is not "tumour".
 * British and American spellings of common radiology words are folded together. The feature vector is
 * sparse: (index, value) pairs over `dim` hashed buckets, L2-normalized; a signed hash keeps collisions from
 * adding up in one direction.
 */

export const TEXT_FEATURES_VERSION = 'hash-ngram-v1';

export interface TextFeatureOptions {
  /** Hashed buckets (default 4096). */
  dim?: number;
}

export interface SparseFeatures {
  indices: Int32Array;
  values: Float32Array;
}

/** What the featurizer made of a text, for people (`mir3d search --text … --explain`) and tests. */
export interface TextAnalysis {
  tokens: string[];
  sizesCm: Array<{ valueCm: number; bound: 'exact' | 'min' | 'max' }>;
  negated: string[];
}

const SPELLING: Record<string, string> = {
  tumour: 'tumor',
  tumours: 'tumors',
  oesophagus: 'esophagus',
  oedema: 'edema',
  haemorrhage: 'hemorrhage',
  haematoma: 'hematoma',
  centimetres: 'centimeters',
  centimetre: 'centimeter',
  millimetres: 'millimeters',
  millimetre: 'millimeter',
  lesions: 'lesion',
  tumors: 'tumor',
  opacities: 'opacity',
  nodules: 'nodule',
  masses: 'mass',
  metastases: 'metastasis',
  metastatic: 'metastasis',
  cysts: 'cyst',
  lungs: 'lung',
  lobes: 'lobe',
  kidneys: 'kidney',
  consolidations: 'consolidation',
};

const NUMBER_WORDS: Record<string, number> = { one: 1, single: 1, solitary: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10 };
const MANY_WORDS = new Set(['multiple', 'several', 'numerous', 'many', 'multifocal', 'innumerable']);
const CM_UNITS: Record<string, number> = { cm: 1, centimeter: 1, centimeters: 1, mm: 0.1, millimeter: 0.1, millimeters: 0.1 };
const LOWER_BOUND = ['larger than', 'greater than', 'bigger than', 'more than', 'over', 'above', 'exceeding', 'at least', '>', '>=', '≥'];
const UPPER_BOUND = ['smaller than', 'less than', 'under', 'below', 'up to', 'at most', '<', '<=', '≤'];
const NEGATION_CUES = ['no', 'not', 'without', 'absence of', 'absent', 'negative for', 'free of', 'denies', 'neither', 'nor', 'ruled out', 'rule out', 'excluded'];
/** Words that end a negation's scope (NegEx's termination terms, shortened). */
const SCOPE_END = new Set(['but', 'however', 'although', 'except', 'which', 'while', 'whereas', 'yet', 'though']);
const SIZE_THRESHOLDS_CM = [1, 2, 3, 4, 5, 6, 8, 10];
const COUNT_THRESHOLDS = [1, 2, 3, 5, 10];
const STOP_WORDS = new Set(['a', 'an', 'the', 'of', 'in', 'on', 'at', 'and', 'or', 'is', 'are', 'was', 'were', 'be', 'this', 'that', 'these', 'with', 'to', 'by', 'as', 'its', 'it', 'which', 'from', 'for', 'there', 'shows', 'show', 'showing', 'seen', 'depicts']);

/** Lower-cases, splits into words, numbers and comparison signs, and folds spellings. */
export function tokenizeText(text: string): string[] {
  const spaced = text
    .toLowerCase()
    .replace(/(\d)([a-z])/g, '$1 $2')
    .replace(/([<>≤≥]=?)/g, ' $1 ');
  const raw = spaced.match(/[<>≤≥]=?|\d+(?:[.,]\d+)?|[a-z]+(?:'[a-z]+)?|[.;:!?()]/g) ?? [];
  // Twice: a British plural folds to the American plural, then to the singular.
  return raw.map((token) => SPELLING[SPELLING[token] ?? token] ?? SPELLING[token] ?? token);
}

const isClauseEnd = (token: string): boolean => /^[.;:!?()]$/.test(token) || SCOPE_END.has(token);

function matchPhrase(tokens: string[], at: number, phrases: readonly string[]): number {
  for (const phrase of phrases) {
    const words = phrase.split(' ');
    if (words.every((word, i) => tokens[at + i] === word)) return words.length;
  }
  return 0;
}

/** Finds sizes and counts, marks negated words, and returns what remains as words. */
export function analyzeText(text: string): TextAnalysis & { counts: Array<{ value: number; bound: 'exact' | 'min' }>; words: string[] } {
  const tokens = tokenizeText(text);
  const sizesCm: TextAnalysis['sizesCm'] = [];
  const counts: Array<{ value: number; bound: 'exact' | 'min' }> = [];
  const words: string[] = [];
  const negated: string[] = [];
  let negating = false;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (isClauseEnd(token)) {
      negating = false;
      continue;
    }
    const cue = matchPhrase(tokens, i, NEGATION_CUES);
    if (cue > 0) {
      negating = true;
      i += cue - 1;
      continue;
    }
    const lower = matchPhrase(tokens, i, LOWER_BOUND);
    const upper = lower > 0 ? 0 : matchPhrase(tokens, i, UPPER_BOUND);
    const skip = lower || upper;
    const numberAt = i + skip;
    const value = parseNumber(tokens[numberAt]);
    if (value !== undefined) {
      const unit = CM_UNITS[tokens[numberAt + 1] ?? ''];
      if (unit !== undefined) {
        sizesCm.push({ valueCm: value * unit, bound: lower ? 'min' : upper ? 'max' : 'exact' });
        i = numberAt + 1;
        continue;
      }
      if (!upper && numberAt + 1 < tokens.length && /^(tumor|lesion|nodule|mass|metastasis|cyst)$/.test(tokens[numberAt + 1]) && Number.isInteger(value)) {
        counts.push({ value, bound: lower ? 'min' : 'exact' });
        i = numberAt;
        continue;
      }
    }
    if (MANY_WORDS.has(token)) {
      counts.push({ value: 2, bound: 'min' });
      continue;
    }
    if (/^\d/.test(token) || STOP_WORDS.has(token)) continue;
    if (negating) negated.push(token);
    words.push(negating ? `NOT_${token}` : token);
  }
  return { tokens, sizesCm, negated, counts, words };
}

function parseNumber(token: string | undefined): number | undefined {
  if (token === undefined) return undefined;
  if (/^\d+(?:[.,]\d+)?$/.test(token)) return Number(token.replace(',', '.'));
  return NUMBER_WORDS[token];
}

/** The named features of a text, before hashing (readable: tests and --explain show them). */
export function namedTextFeatures(text: string): Map<string, number> {
  const analysis = analyzeText(text);
  const features = new Map<string, number>();
  const add = (name: string, weight: number): void => {
    features.set(name, (features.get(name) ?? 0) + weight);
  };
  const { words } = analysis;
  words.forEach((word, i) => {
    add(`w:${word}`, 1);
    if (i + 1 < words.length) add(`b:${word}_${words[i + 1]}`, 0.7);
    // Character trigrams tie inflections and typos together ("opacity"/"opacified"); weighted low.
    const padded = `<${word.replace(/^NOT_/, '')}>`;
    const prefix = word.startsWith('NOT_') ? 'NOT_' : '';
    for (let c = 0; c + 3 <= padded.length; c++) add(`c:${prefix}${padded.slice(c, c + 3)}`, 0.15);
  });
  for (const size of analysis.sizesCm) {
    add('size', 1);
    for (const t of SIZE_THRESHOLDS_CM) {
      // A measurement (or lower bound) of v cm satisfies "≥ t" for each t ≤ v; an upper bound "≤ t" for t ≥ v.
      if (size.bound !== 'max' && size.valueCm >= t) add(`size>=${t}cm`, 1);
      if (size.bound !== 'min' && size.valueCm <= t) add(`size<=${t}cm`, 1);
    }
  }
  for (const count of analysis.counts) {
    add('count', 1);
    for (const t of COUNT_THRESHOLDS) {
      if (count.value >= t) add(`count>=${t}`, 1);
      if (count.bound === 'exact' && count.value <= t) add(`count<=${t}`, 1);
    }
  }
  return features;
}

/** FNV-1a 32-bit: fast, stable across runs and platforms (the buckets are part of a stored space). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Hashed, signed, log-scaled and L2-normalized features of one text. */
export function hashTextFeatures(text: string, options: TextFeatureOptions = {}): SparseFeatures {
  const dim = options.dim ?? 4096;
  const buckets = new Map<number, number>();
  for (const [name, weight] of namedTextFeatures(text)) {
    const hash = fnv1a(name);
    const bucket = hash % dim;
    const sign = (hash >>> 31) & 1 ? -1 : 1;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + sign * Math.log1p(weight));
  }
  const indices = Int32Array.from([...buckets.keys()].sort((a, b) => a - b));
  const values = Float32Array.from(indices, (i) => buckets.get(i) ?? 0);
  let norm = 0;
  for (const v of values) norm += v * v;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < values.length; i++) values[i] /= norm;
  return { indices, values };
}
