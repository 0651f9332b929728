/**
 * A small archive for text search through the product (CLI, HTTP, page): six uniform CT volumes, two of
 * each tissue (soft tissue, lung, bone), with captions and patients in a labels file, and a tiny CLIP-like
 * model whose word vectors match the three HU windows' responses to each tissue, so that a caption
 * ranks the volumes of its tissue first.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Volume } from '../../src/io/volume.js';
import { writeNifti } from '../../src/io/nifti-writer.js';
import { writeTinyClipFolder, type TinyClipOptions } from './tiny-clip.js';

/** HU of each volume: what each of the three windows (abdomen, lung, bone) shows. */
export const TISSUE_HU = { soft: 50, lung: -800, bone: 700, soft2: 40, lung2: -750, bone2: 650 } as const;
export const TISSUE_CAPTIONS: Record<keyof typeof TISSUE_HU, string> = {
  soft: 'soft tissue of the abdomen',
  lung: 'lung with air',
  bone: 'dense bone',
  soft2: 'abdomen soft tissue',
  lung2: 'air in the lungs',
  bone2: 'bone',
};
/** Word vectors matching the windows' responses to each tissue: the pair then shares one space. */
export const TISSUE_WORDS: TinyClipOptions['wordVectors'] = { soft: [0.5, 0.93, 0.31], tissue: [0.5, 0.93, 0.31], lung: [0, 0.37, 0], air: [0, 0.37, 0], bone: [1, 1, 0.67] };

export function uniformVolume(hu: number, slices = 6): Volume {
  const dims: [number, number, number] = [32, 32, slices];
  return {
    data: new Int16Array(dims[0] * dims[1] * dims[2]).fill(hu),
    dims,
    spacingMm: [2, 2, 2],
    affineRas: [-2, 0, 0, 30, 0, -2, 0, 30, 0, 0, 2, 0, 0, 0, 0, 1],
    modality: 'CT',
    source: { path: 'memory', format: 'generated', orientation: 'LPS', storedDataType: 'int16' },
    corrections: [],
  };
}

/** Writes `archive/<tissue>.nii.gz`, `labels.csv` (name, caption, patient, tissue) and a tiny CLIP folder `clip/`. */
export async function writeTissueArchive(root: string, clip: TinyClipOptions = {}): Promise<{ archive: string; labels: string; clip: string }> {
  const archive = join(root, 'archive');
  mkdirSync(archive, { recursive: true });
  for (const [name, hu] of Object.entries(TISSUE_HU)) await writeNifti(join(archive, `${name}.nii.gz`), uniformVolume(hu));
  const labels = join(root, 'labels.csv');
  const rows = Object.entries(TISSUE_CAPTIONS).map(([name, caption], i) => `${name}.nii.gz,${caption},p${i % 3},${name.replace('2', '')}`);
  writeFileSync(labels, `name,caption,patient,tissue\n${rows.join('\n')}\n`);
  const model = writeTinyClipFolder(join(root, 'clip'), { wordVectors: TISSUE_WORDS, ...clip });
  return { archive, labels, clip: model };
}
