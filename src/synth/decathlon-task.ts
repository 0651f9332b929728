import { join } from 'node:path';
import { writeFileAtomic } from '../io/nifti-writer.js';
import type { TumourSummary } from '../labels/lesion-groups.js';
import { captionOf, formatThreeDMirLabels, formatThreeDMirSplit, type ThreeDMirRow } from '../labels/threedmir-csv.js';

/** One generated liver case as both synthetic benchmarks write it. */
export interface GeneratedLiverCase {
  /** File name under imagesTr/ and labelsTr/. */
  name: string;
  organ: string;
  split: 'train' | 'test';
  labels: TumourSummary;
}

/**
 * Writes what the 3D-MIR protocol reads for a generated liver task: the Decathlon `dataset.json` (masks
 * with liver 1 and tumour 2) and the three 3D-MIR CSVs (labels and captions, train and test splits), so
 * that `mir3d eval` treats a synthetic benchmark exactly as it treats the real Decathlon images.
 */
export async function writeLiverTask(
  cases: readonly GeneratedLiverCase[],
  where: { taskDir: string; csvDir: string },
  about: { name: string; description: string; reference?: string },
): Promise<void> {
  const dataset = {
    name: about.name,
    description: about.description,
    ...(about.reference ? { reference: about.reference } : {}),
    tensorImageSize: '3D',
    modality: { '0': 'CT' },
    labels: { '0': 'background', '1': 'liver', '2': 'cancer' },
    numTraining: cases.length,
    numTest: 0,
    training: cases.map((c) => ({ image: `./imagesTr/${c.name}`, label: `./labelsTr/${c.name}` })),
    test: [],
  };
  await writeFileAtomic(join(where.taskDir, 'dataset.json'), JSON.stringify(dataset, null, 2) + '\n');
  const rows: ThreeDMirRow[] = cases.map((c) => ({
    name: c.name,
    organ: c.organ,
    maxTumorSizeCm: Number(c.labels.maxTumorSizeCm.toFixed(6)),
    numberTumors: c.labels.numberTumors,
    lesionGroup: c.labels.lesionGroup,
    cancerFlag: c.labels.cancerFlag,
    captions: [captionOf(c.organ, 'liver', c.labels.maxTumorSizeCm, c.labels.numberTumors)],
  }));
  await writeFileAtomic(join(where.csvDir, 'liver_labels_and_captions.csv'), formatThreeDMirLabels(rows));
  await writeFileAtomic(join(where.csvDir, 'liver_full_train_split.csv'), formatThreeDMirSplit(cases.filter((c) => c.split === 'train').map((c) => c.name), 'training'));
  await writeFileAtomic(join(where.csvDir, 'liver_full_test_split.csv'), formatThreeDMirSplit(cases.filter((c) => c.split === 'test').map((c) => c.name), 'testing'));
}
