import { SEARCH_METHODS, type FusionMethod, type SearchMethod } from '../search/types.js';


// ---------------------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------------------

export interface EvalMethod {
  /** What tables and files call it: the method name, or `fusion:a+b` for a fused pair. */
  label: string;
  method: SearchMethod;
  fuseWith?: { method: SearchMethod; fusion: FusionMethod };
  /** A learned space of the eval index the method searches in (head-stage.ts); undefined: raw. */
  space?: string;
}

/** Every single method, then C-MIR's re-ranking fused with volume-mean by RRF and 3D-MIR's interleave. */
export const DEFAULT_EVAL_METHODS: readonly string[] = [...SEARCH_METHODS, 'rrf:rerank+volume-mean', 'interleave:slice-count+volume-mean'];
export const DEFAULT_EVAL_ENCODERS: readonly string[] = ['mobilenet_v2', 'baseline'];

function isSearchMethod(text: string): text is SearchMethod {
  return (SEARCH_METHODS as readonly string[]).includes(text);
}

/** `slice-count`, …, or `rrf:a+b` / `interleave:a+b` (a fused with b). Shell-safe: no brackets. */
export function parseEvalMethod(text: string): EvalMethod {
  const spec = text.trim();
  if (isSearchMethod(spec)) return { label: spec, method: spec };
  const fused = /^(rrf|interleave):([a-z-]+)\+([a-z-]+)$/.exec(spec);
  if (fused && isSearchMethod(fused[2]) && isSearchMethod(fused[3])) {
    return { label: spec, method: fused[2], fuseWith: { method: fused[3], fusion: fused[1] as FusionMethod } };
  }
  throw new RangeError(`unknown method '${spec}': use ${SEARCH_METHODS.join(', ')}, or rrf:A+B / interleave:A+B`);
}
