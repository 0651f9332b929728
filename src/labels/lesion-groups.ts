/**
 * DESIGN.md's lesion-group table (Evaluation), in one place: the evaluation labels masks with it and
 * the synthesizers (phantoms, development benchmark) label what they generate with it.
 */

/** The four Decathlon tumour sites of 3D-MIR. */
export type TumourOrgan = 'liver' | 'colon' | 'pancreas' | 'lung';
export const TUMOUR_ORGANS: readonly TumourOrgan[] = ['liver', 'colon', 'pancreas', 'lung'];

export function isTumourOrgan(value: string): value is TumourOrgan {
  return (TUMOUR_ORGANS as readonly string[]).includes(value);
}

/** −1: no tumour; 1…4 as in the organ's table (group 4 only for colon and pancreas). */
export type LesionGroup = -1 | 1 | 2 | 3 | 4;

export interface TumourLabels {
  cancerFlag: 0 | 1;
  lesionGroup: LesionGroup;
}

/** The volume-level numbers 3D-MIR's CSVs carry besides the labels. */
export interface TumourSummary extends TumourLabels {
  /** Largest tumour's largest diameter in cm (0 without tumour), as the CSV column max_tumor_size. */
  maxTumorSizeCm: number;
  numberTumors: number;
}

export const NO_TUMOUR: Readonly<TumourLabels> = Object.freeze({ cancerFlag: 0, lesionGroup: -1 });

/**
 * Which reading of the group table:
 * - `design`: DESIGN.md's table as written. Liver: 1 = one tumour < 20 mm; 3 = largest > 50 mm (any
 *   count); 2 = otherwise. Colon/pancreas: < 20, [20, 40), [40, 60), ≥ 60 mm → 1…4. Lung: 1 = one tumour
 *   < 30 mm; 2 = one tumour 30–50 mm (50 included, like the liver's 50); 3 = otherwise.
 * - `3dmir-csv`: the rule the published 3D-MIR CSVs actually follow (inferred from all 763 rows; see the
 *   agreement test). It differs for single tumours above 50 mm: liver and lung label them 2, not 3.
 *   Liver: 1 = one tumour < 20 mm; 2 = one tumour ≥ 20 mm (any size) or several with largest ≤ 50 mm;
 *   3 = several with largest > 50 mm. Lung: 1 = one tumour < 30 mm; 2 = one tumour ≥ 30 mm; 3 = several.
 *   Colon/pancreas as `design`.
 * Thresholds are inclusive at their lower bound (a size exactly at a threshold goes to the higher group)
 * except where the table says "max < 5 cm" / "max > 5 cm" for the liver, where exactly 50 mm stays in
 * group 2 (the phantoms are labelled by this same function).
 */
export type GroupRule = 'design' | '3dmir-csv';
export const GROUP_RULES: readonly GroupRule[] = ['design', '3dmir-csv'];

/**
 * lesion_group for a volume whose largest tumour measures `maxDiameterMm` and which has `tumourCount`
 * tumours (after the small-component rules). No tumour → −1.
 */
export function lesionGroupOf(organ: TumourOrgan, maxDiameterMm: number, tumourCount: number, rule: GroupRule = 'design'): LesionGroup {
  if (!Number.isInteger(tumourCount) || tumourCount < 0) throw new RangeError(`tumour count ${tumourCount} must be a non-negative integer`);
  if (tumourCount === 0) return -1;
  if (!(maxDiameterMm >= 0) || !Number.isFinite(maxDiameterMm)) throw new RangeError(`tumour size ${maxDiameterMm} mm must be a finite non-negative number`);
  const single = tumourCount === 1;
  switch (organ) {
    case 'liver':
      if (rule === 'design') {
        if (maxDiameterMm > 50) return 3;
        return single && maxDiameterMm < 20 ? 1 : 2;
      }
      if (single) return maxDiameterMm < 20 ? 1 : 2;
      return maxDiameterMm > 50 ? 3 : 2;
    case 'colon':
    case 'pancreas':
      if (maxDiameterMm < 20) return 1;
      if (maxDiameterMm < 40) return 2;
      if (maxDiameterMm < 60) return 3;
      return 4;
    case 'lung':
      if (!single) return 3;
      if (maxDiameterMm < 30) return 1;
      if (rule === '3dmir-csv') return 2;
      return maxDiameterMm <= 50 ? 2 : 3;
  }
}

/** Flag, group, size and count from the tumours' largest diameters (mm). */
export function tumourSummaryOf(organ: TumourOrgan, diametersMm: readonly number[], rule: GroupRule = 'design'): TumourSummary {
  if (diametersMm.length === 0) return { cancerFlag: 0, lesionGroup: -1, maxTumorSizeCm: 0, numberTumors: 0 };
  const maxMm = Math.max(...diametersMm);
  return { cancerFlag: 1, lesionGroup: lesionGroupOf(organ, maxMm, diametersMm.length, rule), maxTumorSizeCm: maxMm / 10, numberTumors: diametersMm.length };
}
