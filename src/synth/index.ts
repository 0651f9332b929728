export { generatePhantom, lesionLabels } from './phantom.js';
export type { LesionSpec, LesionTruth, OrganTruth, Phantom, PhantomOptions, PhantomTruth } from './phantom.js';
export { COVERAGES, type CoverageName } from './anatomy.js';
export { LABEL, ORGAN_NAMES, labelName, type LabelName, type OrganName } from './phantom-labels.js';
