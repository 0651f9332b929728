import type { PhantomOptions } from './phantom.js';

/** One plan per phantom, cycled: lesion-free and lesion-bearing livers across 3D-MIR's liver lesion
 * groups (−1 none, 1 one < 2 cm, 2 one > 2 cm or several ≤ 5 cm, 3 > 5 cm), several scan ranges and
 * slice spacings, so retrieval has both near-duplicates and real differences to find. */
export const DEMO_PLANS: Omit<PhantomOptions, 'seed'>[] = [
  { coverage: 'abdomen', spacingMm: [3, 3, 2.5] },
  { coverage: 'abdomen', spacingMm: [3, 3, 2.5], lesions: [{ diameterMm: 12 }] },
  { coverage: 'thorax-abdomen', spacingMm: [3, 3, 5], lesions: [{ diameterMm: 35 }] },
  { coverage: 'thorax-abdomen', spacingMm: [3, 3, 5] },
  { coverage: 'liver', spacingMm: [3, 3, 2], lesions: [{ diameterMm: 15 }, { diameterMm: 25 }] },
  { coverage: 'abdomen', spacingMm: [3, 3, 3], lesions: [{ diameterMm: 60 }] },
  { coverage: 'thorax', spacingMm: [3, 3, 5] },
  { coverage: 'abdomen', spacingMm: [3, 3, 2.5], lesions: [{ diameterMm: 10 }, { diameterMm: 18, contrastHu: 30 }, { diameterMm: 28 }] },
];

export function demoPlan(count: number, seed: number): { id: string; options: PhantomOptions }[] {
  return Array.from({ length: count }, (_, n) => ({
    id: `phantom-${String(n + 1).padStart(2, '0')}`,
    options: { ...DEMO_PLANS[n % DEMO_PLANS.length], seed: seed * 1000 + n + 1 },
  }));
}
