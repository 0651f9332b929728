export { generatePhantom, lesionLabels } from './generate.js';
export type { LesionSpec, LesionTruth, OrganTruth, Phantom, PhantomOptions, PhantomTruth } from './generate.js';
export { COVERAGES, type CoverageName } from './anatomy.js';
export { LABEL, ORGAN_NAMES, labelName, type LabelName, type OrganName } from './labels.js';
