import { saveTextSpace, trainTextSpace, DEFAULT_TEXT_SPACE } from '../space/learned-text.js';
import { StoreError } from '../store/errors.js';
import { indexExists, openStore } from '../store/index.js';
import { startProgress } from './progress.js';

export interface TrainCaptionsOptions {
  db: string;
  captions: string;
  groupBy?: string;
  name?: string;
  seed?: number;
  steps?: number;
  progress?: boolean;
}

/** `mir3d train --db DB --captions COLUMN`: learns a text space from the captions the volumes carry. */
export async function trainCaptions(options: TrainCaptionsOptions): Promise<void> {
  if (!indexExists(options.db)) throw new StoreError('NOT_FOUND', options.db, 'no index here (create one with mir3d index … --labels captions.csv)');
  const store = openStore(options.db);
  try {
    const maxSteps = options.steps ?? 300;
    const progress = startProgress('learning the text space', maxSteps, 'steps', options.progress ?? true);
    const started = performance.now();
    const trained = trainTextSpace(store, {
      captionColumn: options.captions,
      ...(options.groupBy ? { groupBy: options.groupBy } : {}),
      name: options.name ?? DEFAULT_TEXT_SPACE,
      seed: options.seed ?? 1,
      maxSteps,
      onProgress: (step, _total, loss, validation) => progress.update(step, `loss ${loss.toFixed(3)}${validation !== undefined ? `, held-out loss ${validation.toFixed(3)}` : ''}`),
    });
    progress.update(maxSteps);
    progress.stop();
    saveTextSpace(store, trained);
    const r = trained.record;
    process.stdout.write(
      `text space '${trained.encoder.name}' learned from ${r.captions} captions of ${r.volumes} volumes (label ${r.captionColumn}) in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
        `${r.steps} steps, training loss ${r.trainLoss.toFixed(3)}` +
        (r.validationLoss !== null ? `, held-out loss ${r.validationLoss.toFixed(3)} on ${r.validationCaptions} captions of unseen ${r.groupBy ?? 'volume'} groups (early stopping)` : '') +
        `\nsearch it with: mir3d search --text "…" --db ${options.db}\n`,
    );
  } finally {
    store.close();
  }
}
