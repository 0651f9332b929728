/**
 * TotalSegmentator's structure names and a coarse grouping of them into anatomical regions, for region
 * retrieval (Khun Jush et al., arXiv 2405.09334, report recall over 29 coarse and 104 fine regions).
 *
 * The paper does not print its coarse table, so this one is ours, written by anatomy: left/right pairs
 * become one region, all vertebrae (and the spinal cord) the spine, lung lobes the lungs, heart chambers
 * the heart, ribs with sternum and costal cartilages the rib cage, and so on. On the 104 v1 structures it
 * gives exactly 29 regions:
 *
 * | region | v1 structures |
 * |---|---|
 * | spleen, gallbladder, liver, stomach, pancreas, esophagus, trachea, aorta, portal_vein_and_splenic_vein, colon, urinary_bladder, brain | themselves (12) |
 * | kidneys | kidney_left/right (v2 also kidney_cyst_left/right) |
 * | adrenal_glands | adrenal_gland_left/right |
 * | lungs | the five lung lobes |
 * | spine | vertebrae C1–L5 (v2 also S1, spinal_cord) |
 * | heart | heart_myocardium, heart_atrium_*, heart_ventricle_* (v2: heart, atrial_appendage_left) |
 * | venae_cavae | inferior_vena_cava (v2 also superior_vena_cava) |
 * | pulmonary_vessels | pulmonary_artery (v2: pulmonary_vein) |
 * | iliac_vessels | iliac_artery_*, iliac_vena_* |
 * | small_bowel | small_bowel, duodenum |
 * | rib_cage | rib_left/right_1–12 (v2 also sternum, costal_cartilages) |
 * | shoulder_girdle | scapula_*, clavicula_* |
 * | humerus, femur | left and right |
 * | pelvis | hip_left/right, sacrum |
 * | skull | face (v2: skull) |
 * | gluteal_muscles | gluteus_maximus/medius/minimus_* |
 * | trunk_muscles | autochthon_*, iliopsoas_* |
 *
 * v2 adds three regions for structures v1 lacks: thyroid_gland, prostate and supra_aortic_vessels
 * (brachiocephalic trunk and veins, subclavian and common carotid arteries): 32 on the v2 class map.
 */

const VERTEBRAE_V1 = [
  ...[5, 4, 3, 2, 1].map((n) => `vertebrae_L${n}`),
  ...[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1].map((n) => `vertebrae_T${n}`),
  ...[7, 6, 5, 4, 3, 2, 1].map((n) => `vertebrae_C${n}`),
];
const ribs = (side: 'left' | 'right'): string[] => Array.from({ length: 12 }, (_, n) => `rib_${side}_${n + 1}`);

/** TotalSegmentator v1 "total" task: class id = index + 1 (1…104). */
export const TOTALSEG_V1_CLASSES: readonly string[] = [
  'spleen', 'kidney_right', 'kidney_left', 'gallbladder', 'liver', 'stomach', 'aorta', 'inferior_vena_cava',
  'portal_vein_and_splenic_vein', 'pancreas', 'adrenal_gland_right', 'adrenal_gland_left',
  'lung_upper_lobe_left', 'lung_lower_lobe_left', 'lung_upper_lobe_right', 'lung_middle_lobe_right',
  'lung_lower_lobe_right',
  ...VERTEBRAE_V1,
  'esophagus', 'trachea', 'heart_myocardium', 'heart_atrium_left', 'heart_ventricle_left', 'heart_atrium_right',
  'heart_ventricle_right', 'pulmonary_artery', 'brain', 'iliac_artery_left', 'iliac_artery_right',
  'iliac_vena_left', 'iliac_vena_right', 'small_bowel', 'duodenum', 'colon',
  ...ribs('left'),
  ...ribs('right'),
  'humerus_left', 'humerus_right', 'scapula_left', 'scapula_right', 'clavicula_left', 'clavicula_right',
  'femur_left', 'femur_right', 'hip_left', 'hip_right', 'sacrum', 'face', 'gluteus_maximus_left',
  'gluteus_maximus_right', 'gluteus_medius_left', 'gluteus_medius_right', 'gluteus_minimus_left',
  'gluteus_minimus_right', 'autochthon_left', 'autochthon_right', 'iliopsoas_left', 'iliopsoas_right',
  'urinary_bladder',
];

/** TotalSegmentator v2 "total" task (class_map_total_v2.json): class id = index + 1 (1…117). */
export const TOTALSEG_V2_CLASSES: readonly string[] = [
  'spleen', 'kidney_right', 'kidney_left', 'gallbladder', 'liver', 'stomach', 'pancreas',
  'adrenal_gland_right', 'adrenal_gland_left', 'lung_upper_lobe_left', 'lung_lower_lobe_left',
  'lung_upper_lobe_right', 'lung_middle_lobe_right', 'lung_lower_lobe_right', 'esophagus', 'trachea',
  'thyroid_gland', 'small_bowel', 'duodenum', 'colon', 'urinary_bladder', 'prostate', 'kidney_cyst_left',
  'kidney_cyst_right', 'sacrum', 'vertebrae_S1', 'vertebrae_L5', 'vertebrae_L4', 'vertebrae_L3',
  'vertebrae_L2', 'vertebrae_L1', 'vertebrae_T12', 'vertebrae_T11', 'vertebrae_T10', 'vertebrae_T9',
  'vertebrae_T8', 'vertebrae_T7', 'vertebrae_T6', 'vertebrae_T5', 'vertebrae_T4', 'vertebrae_T3',
  'vertebrae_T2', 'vertebrae_T1', 'vertebrae_C7', 'vertebrae_C6', 'vertebrae_C5', 'vertebrae_C4',
  'vertebrae_C3', 'vertebrae_C2', 'vertebrae_C1', 'heart', 'aorta', 'pulmonary_vein',
  'brachiocephalic_trunk', 'subclavian_artery_right', 'subclavian_artery_left',
  'common_carotid_artery_right', 'common_carotid_artery_left', 'brachiocephalic_vein_left',
  'brachiocephalic_vein_right', 'atrial_appendage_left', 'superior_vena_cava', 'inferior_vena_cava',
  'portal_vein_and_splenic_vein', 'iliac_artery_left', 'iliac_artery_right', 'iliac_vena_left',
  'iliac_vena_right', 'humerus_left', 'humerus_right', 'scapula_left', 'scapula_right', 'clavicula_left',
  'clavicula_right', 'femur_left', 'femur_right', 'hip_left', 'hip_right', 'spinal_cord',
  'gluteus_maximus_left', 'gluteus_maximus_right', 'gluteus_medius_left', 'gluteus_medius_right',
  'gluteus_minimus_left', 'gluteus_minimus_right', 'autochthon_left', 'autochthon_right', 'iliopsoas_left',
  'iliopsoas_right', 'brain', 'skull', 'rib_left_1', 'rib_left_2', 'rib_left_3', 'rib_left_4', 'rib_left_5',
  'rib_left_6', 'rib_left_7', 'rib_left_8', 'rib_left_9', 'rib_left_10', 'rib_left_11', 'rib_left_12',
  'rib_right_1', 'rib_right_2', 'rib_right_3', 'rib_right_4', 'rib_right_5', 'rib_right_6', 'rib_right_7',
  'rib_right_8', 'rib_right_9', 'rib_right_10', 'rib_right_11', 'rib_right_12', 'sternum',
  'costal_cartilages',
];

/** Class id → structure name. */
export type ClassMap = ReadonlyMap<number, string>;

export function classMapOf(names: readonly string[]): ClassMap {
  return new Map(names.map((name, i) => [i + 1, name]));
}

const SAME_NAME = new Set([
  'spleen', 'gallbladder', 'liver', 'stomach', 'pancreas', 'esophagus', 'trachea', 'aorta',
  'portal_vein_and_splenic_vein', 'colon', 'urinary_bladder', 'brain', 'thyroid_gland', 'prostate',
]);

const COARSE_RULES: readonly (readonly [RegExp, string])[] = [
  [/^vertebrae_[CTLS]\d+$/, 'spine'],
  [/^spinal_cord$/, 'spine'],
  [/^rib_(left|right)_\d+$/, 'rib_cage'],
  [/^(sternum|costal_cartilages)$/, 'rib_cage'],
  [/^lung_(upper|middle|lower)_lobe_(left|right)$/, 'lungs'],
  [/^heart(_.+)?$/, 'heart'],
  [/^atrial_appendage_left$/, 'heart'],
  [/^kidney_(cyst_)?(left|right)$/, 'kidneys'],
  [/^adrenal_gland_(left|right)$/, 'adrenal_glands'],
  [/^iliac_(artery|vena)_(left|right)$/, 'iliac_vessels'],
  [/^(inferior|superior)_vena_cava$/, 'venae_cavae'],
  [/^pulmonary_(artery|vein)$/, 'pulmonary_vessels'],
  [/^(small_bowel|duodenum)$/, 'small_bowel'],
  [/^(scapula|clavicula)_(left|right)$/, 'shoulder_girdle'],
  [/^humerus_(left|right)$/, 'humerus'],
  [/^femur_(left|right)$/, 'femur'],
  [/^(hip_(left|right)|sacrum)$/, 'pelvis'],
  [/^(face|skull)$/, 'skull'],
  [/^gluteus_(maximus|medius|minimus)_(left|right)$/, 'gluteal_muscles'],
  [/^(autochthon|iliopsoas)_(left|right)$/, 'trunk_muscles'],
  [/^(brachiocephalic_trunk|brachiocephalic_vein_(left|right)|subclavian_artery_(left|right)|common_carotid_artery_(left|right))$/, 'supra_aortic_vessels'],
];

/** The coarse region of a TotalSegmentator structure; undefined for a name the table does not know. */
export function coarseRegionOf(structure: string): string | undefined {
  if (SAME_NAME.has(structure)) return structure;
  for (const [pattern, region] of COARSE_RULES) if (pattern.test(structure)) return region;
  return undefined;
}

/** Sorted distinct coarse regions of a list of structures (unknown names are left out). */
export function coarseRegionsOf(structures: readonly string[]): string[] {
  return [...new Set(structures.map(coarseRegionOf).filter((r): r is string => r !== undefined))].sort();
}
