/**
 * Label codes of phantom label maps (labels.nii.gz, uint8). Every voxel inside the body has a non-zero
 * code, so `label > 0` is the body mask; organs overwrite one another in a fixed priority (bone first,
 * lungs last), and a lesion code only ever replaces liver.
 *
 * | code | structure |
 * |---|---|
 * | 0 | outside the body (air, scanner field-of-view padding) |
 * | 1 | liver (without its lesions) |
 * | 2 | liver lesion (every lesion; tell them apart by connected components or by truth.json) |
 * | 3 | spleen |
 * | 4 | kidneys (both) |
 * | 5 | lungs (both) |
 * | 6 | bone (spine, ribs, sternum, pelvis, femoral heads) |
 * | 7 | aorta |
 * | 8 | heart |
 * | 9 | other body tissue (fat, muscle, spinal canal, intervertebral discs, bowel gas) |
 */
export const LABEL = {
  background: 0,
  liver: 1,
  lesion: 2,
  spleen: 3,
  kidneys: 4,
  lungs: 5,
  bone: 6,
  aorta: 7,
  heart: 8,
  body: 9,
} as const;

export type LabelName = keyof typeof LABEL;
export type LabelCode = (typeof LABEL)[LabelName];

/** The organs reported in truth.json, in label order (lesions are reported one by one instead). */
export const ORGAN_NAMES = ['liver', 'spleen', 'kidneys', 'lungs', 'bone', 'aorta', 'heart'] as const;
export type OrganName = (typeof ORGAN_NAMES)[number];

export function labelName(code: number): LabelName | undefined {
  return (Object.keys(LABEL) as LabelName[]).find((name) => LABEL[name] === code);
}
