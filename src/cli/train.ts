import { InvalidArgumentError, type Command } from 'commander';
import { fitHead, fitNormalization, seededRandom } from '../space/fit.js';
import { spaceModel } from '../space/graph.js';
import { defaultSpaceName, listSpaces, RAW_SPACE, saveSpace, setDefaultSpace, spaceId } from '../space/persist.js';
import { StoreError } from '../store/errors.js';
import { indexExists, openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { collect, positiveInteger } from './options.js';
import { startProgress } from './progress.js';

interface TrainCommandOptions {
  db: string;
  target: string[];
  groupBy?: string;
  normalize?: boolean;
  whiten?: number;
  sample?: number;
  name?: string;
  seed: number;
  default?: boolean;
  list?: boolean;
  progress: boolean;
}

/** Every stored slice vector of the index with its volume's labels (rows in volume order). */
function slicesOf(store: Store): { vectors: Float32Array; owners: number[]; labels: Array<Record<string, string | number>> } {
  const records = store.listVolumes();
  const vectors = store.getVectors(records.map((r) => r.volumeId));
  let rows = 0;
  for (const r of records) rows += vectors.get(r.volumeId)?.sliceIndices.length ?? 0;
  const out = new Float32Array(rows * store.dim);
  const owners: number[] = [];
  let at = 0;
  records.forEach((record, i) => {
    const v = vectors.get(record.volumeId);
    if (!v) return;
    out.set(v.vectors.subarray(0, v.sliceIndices.length * store.dim), at * store.dim);
    for (let s = 0; s < v.sliceIndices.length; s++) owners.push(i);
    at += v.sliceIndices.length;
  });
  return { vectors: out, owners, labels: records.map((r) => r.labels) };
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description("Learn a space from the index's own vectors: a head from labels (--target, --group-by), or archive statistics (--normalize); the backbone is not run again")
    .requiredOption('--db <dir>', 'index directory')
    .option('--target <column>', 'label column the head learns (repeatable)', collect, [])
    .option('--group-by <column>', 'group column (patient): validation holds whole groups out')
    .option('--normalize', 'fit archive statistics instead: mean-centring (with --whiten: PCA-whitening)')
    .option('--whiten <dim>', 'with --normalize: PCA-whiten to this dimension', positiveInteger('--whiten'))
    .option('--sample <n>', 'with --normalize: fit on at most this many slice vectors (default 100000)', positiveInteger('--sample'))
    .option('--name <name>', 'name of the space (default "head", or "normalized")')
    .option('--seed <n>', 'seed of the validation split and samples', positiveInteger('--seed'), 1)
    .option('--default', 'make it the space searches use when none is named')
    .option('--list', 'list the spaces of the index and exit')
    .option('--no-progress', 'no progress display')
    .action(async (options: TrainCommandOptions) => {
      if (!indexExists(options.db)) throw new StoreError('NOT_FOUND', options.db, 'no index here (create one with mir3d index)');
      const store = openStore(options.db);
      try {
        if (options.list) {
          const current = defaultSpaceName(store);
          const lines = [`${RAW_SPACE}${current === RAW_SPACE ? '  (default)' : ''}  the backbone's own ${store.dim}-d vectors`];
          for (const s of listSpaces(store)) lines.push(`${s.name}${current === s.name ? '  (default)' : ''}  ${s.kind}, ${s.inputDim} → ${s.outputDim}, ${spaceId(s)}, ${s.createdAt}`);
          process.stdout.write(`${lines.join('\n')}\n`);
          return;
        }
        const slices = slicesOf(store);
        const rows = slices.owners.length;
        if (options.normalize) {
          const name = options.name ?? 'normalized';
          const limit = options.sample ?? 100_000;
          let sample: number[] | undefined;
          if (rows > limit) {
            const random = seededRandom(options.seed);
            sample = Array.from({ length: rows }, (_, i) => i).map((i) => ({ i, key: random() })).sort((a, b) => a.key - b.key).slice(0, limit).map((x) => x.i).sort((a, b) => a - b);
          }
          const fit = await fitNormalization(slices.vectors, store.dim, { ...(sample ? { rows: sample } : {}), ...(options.whiten ? { whitenDim: options.whiten } : {}) });
          const saved = saveSpace(store, { name, kind: 'normalization', encoderId: store.encoderId, inputDim: store.dim, outputDim: fit.layers[0].outDim, training: { method: fit.whitenDim ? `pca-whitening-${fit.whitenDim}` : 'mean-centring', sampleRows: fit.sampleRows, seed: options.seed } }, spaceModel(fit.layers, 'mir3d archive statistics'));
          if (options.default) setDefaultSpace(store, name);
          process.stdout.write(`space ${name}: ${saved.training.method as string} fitted on ${fit.sampleRows} of ${rows} slice vectors (${spaceId(saved)})${options.default ? '; now the default' : ''}\n`);
          return;
        }
        if (options.target.length === 0) throw new InvalidArgumentError('give --target <column> (a label to learn), or --normalize');
        if (!options.groupBy) throw new InvalidArgumentError('--group-by <column> is required (e.g. patient): validation must hold whole patients out');
        const groupBy = options.groupBy;
        const name = options.name ?? 'head';
        const groups = slices.owners.map((o) => String(slices.labels[o][groupBy] ?? `volume-${o}`));
        const targets = options.target.map((t) => slices.owners.map((o) => {
          const value = slices.labels[o][t];
          return value === undefined ? undefined : String(value);
        }));
        const progress = startProgress('training', 1, 'candidates', options.progress);
        let fit;
        try {
          fit = await fitHead({ vectors: slices.vectors, dim: store.dim, targets, groups }, {
            seed: options.seed,
            onProgress: (p) => {
              progress.setTotal(p.steps);
              progress.update(p.step, `p ${p.candidate.pcaDim}, β ${p.candidate.floor}: within-class share (loss) ${p.withinShare.toFixed(3)}, validation P@5 ${p.validationP5.toFixed(3)} (best ${p.best.validationP5.toFixed(3)})`);
            },
          });
        } finally {
          progress.stop();
        }
        const saved = saveSpace(
          store,
          {
            name,
            kind: 'head',
            encoderId: store.encoderId,
            inputDim: store.dim,
            outputDim: fit.layers[0].outDim,
            training: { method: fit.method, targets: options.target, groupBy, seed: options.seed, chosen: { ...fit.chosen }, validation: { ...fit.validation }, trainingRows: fit.trainingRows, seconds: fit.seconds },
          },
          spaceModel(fit.layers, `mir3d head for ${options.target.join(', ')}`),
        );
        if (options.default) setDefaultSpace(store, name);
        process.stdout.write(
          `space ${name}: LDA-like head ${store.dim} → ${fit.layers[0].outDim} (p ${fit.chosen.pcaDim}, β ${fit.chosen.floor}) on ${fit.trainingRows} slice vectors in ${fit.seconds.toFixed(1)} s\n` +
            `validation (${fit.validation.queries} slices of held-out ${groupBy} groups): P@5 ${fit.validation.p5.toFixed(3)} against raw ${fit.validation.rawP5.toFixed(3)}\n` +
            `${spaceId(saved)}${options.default ? '; now the default (searches use it unless --space raw)' : `; search with --space ${name}`}\n`,
        );
      } finally {
        store.close();
      }
    });
}
