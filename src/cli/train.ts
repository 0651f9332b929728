import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_TEXT_SPACE } from '../space/learned-text.js';
import { fitNormalization } from '../space/fit.js';
import { uniformStream } from '../synth/random.js';
import { spaceModel } from '../space/graph.js';
import { HEAD_METHODS, trainHead, type HeadMethod, type SliceTargetLabels } from '../space/train-head.js';
import { defaultSpaceName, listSpaces, loadSpace, RAW_SPACE, removeSpace, saveSpace, setDefaultSpace, spaceId } from '../space/persist.js';
import { slicesOfStore } from '../space/slices.js';
import { StoreError } from '../store/errors.js';
import { indexExists, openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { collect, positiveInteger } from './options.js';
import { startProgress } from './progress.js';
import { trainCaptions } from './train-text.js';
import { sliceTargetsFromCsv } from './train-masks.js';

interface TrainCommandOptions {
  db: string;
  captions?: string;
  target: string[];
  sliceTarget: string[];
  masks?: string;
  groupBy?: string;
  normalize?: boolean;
  whiten?: number;
  sample?: number;
  method: string;
  name?: string;
  seed: number;
  steps?: number;
  default?: boolean;
  setDefault?: string;
  remove?: string;
  list?: boolean;
  progress: boolean;
}


function listText(store: Store): string {
  const current = defaultSpaceName(store);
  const lines = [`${RAW_SPACE}${current === RAW_SPACE ? '  (default)' : ''}  the backbone's own ${store.dim}-d vectors`];
  for (const s of listSpaces(store)) {
    const t = s.training as Record<string, unknown>;
    const validation = t.validation as { p5?: number; rawP5?: number } | undefined;
    const perSlice = new Map(((t.sliceTargets as Array<{ name: string; values: number[] }> | undefined) ?? []).map((x) => [x.name, x.values]));
    const targets = (t.targets as string[] | undefined)?.map((name) => (perSlice.has(name) ? `${name} (per slice, mask ${perSlice.get(name)!.join(',')})` : name)).join(', ');
    const what = s.kind === 'head' ? `head (${String(t.method)}) for ${targets ?? '?'}${validation?.p5 !== undefined ? `, validation P@5 ${validation.p5.toFixed(3)} (raw ${validation.rawP5?.toFixed(3)})` : ''}` : `normalization (${String(t.method)})`;
    lines.push(`${s.name}${current === s.name ? '  (default)' : ''}  ${what}, ${s.inputDim} → ${s.outputDim}, ${spaceId(s)}, ${s.createdAt}`);
  }
  return `${lines.join('\n')}\n`;
}

async function normalize(store: Store, options: TrainCommandOptions): Promise<void> {
  const slices = slicesOfStore(store);
  const rows = slices.owners.length;
  const name = options.name ?? 'normalized';
  const limit = options.sample ?? 100_000;
  let sample: number[] | undefined;
  if (rows > limit) {
    const random = uniformStream(options.seed);
    sample = Array.from({ length: rows }, (_, i) => i).map((i) => ({ i, key: random() })).sort((a, b) => a.key - b.key).slice(0, limit).map((x) => x.i).sort((a, b) => a - b);
  }
  const fit = await fitNormalization(slices.vectors, store.dim, { ...(sample ? { rows: sample } : {}), ...(options.whiten ? { whitenDim: options.whiten } : {}) });
  const method = fit.whitenDim ? `pca-whitening-${fit.whitenDim}` : 'mean-centring';
  const saved = saveSpace(store, { name, kind: 'normalization', encoderId: store.encoderId, inputDim: store.dim, outputDim: fit.layers[fit.layers.length - 1].outDim, training: { method, sampleRows: fit.sampleRows, seed: options.seed } }, spaceModel(fit.layers, 'mir3d archive statistics'));
  if (options.default) setDefaultSpace(store, name);
  process.stdout.write(`space ${name}: ${method} fitted on ${fit.sampleRows} of ${rows} slice vectors (${spaceId(saved)})${options.default ? '; now the default' : `; search with --space ${name}`}\n`);
}

async function head(store: Store, options: TrainCommandOptions): Promise<void> {
  if (!options.groupBy) throw new InvalidArgumentError('--group-by <column> is required with --target (e.g. patient): validation must hold whole patients out');
  const method = options.method as HeadMethod;
  let sliceTargets: SliceTargetLabels | undefined;
  if (options.sliceTarget.length > 0) {
    if (!options.masks) throw new InvalidArgumentError('--slice-target needs --masks FILE.csv: a CSV pairing each indexed volume (path) with its mask (mask)');
    const fromMasks = await sliceTargetsFromCsv(store, options.masks, options.sliceTarget, options.progress);
    sliceTargets = fromMasks.labels;
    for (const line of fromMasks.lines) process.stderr.write(`${line}\n`);
  } else if (options.masks) {
    throw new InvalidArgumentError('--masks is for --slice-target NAME=VALUES (e.g. --slice-target tumour=2,3)');
  }
  const progress = startProgress(`training (${method})`, 1, method === 'lda' ? 'candidates' : 'epochs', options.progress);
  let trained;
  try {
    trained = await trainHead(store, {
      targets: options.target,
      ...(sliceTargets ? { sliceTargets } : {}),
      groupBy: options.groupBy,
      method,
      seed: options.seed,
      ...(options.steps ? { maxEpochs: options.steps } : {}),
      onProgress: (p) => {
        progress.setTotal(p.steps);
        progress.update(p.step, `loss ${p.loss.toFixed(3)}, validation P@5 ${p.validationP5.toFixed(3)} (best ${p.bestP5.toFixed(3)})${p.detail ? `, ${p.detail}` : ''}`);
      },
    });
  } finally {
    progress.stop();
  }
  const name = options.name ?? 'head';
  const saved = saveSpace(store, { name, kind: 'head', encoderId: store.encoderId, inputDim: store.dim, outputDim: trained.outputDim, training: trained.record }, trained.model);
  if (options.default) setDefaultSpace(store, name);
  const v = trained.validation;
  process.stdout.write(
    `space ${name}: ${trained.description} on ${trained.trainingRows} slice vectors of ${trained.groups} ${options.groupBy} groups in ${trained.seconds.toFixed(1)} s\n` +
      `validation (${v.queries} slices of held-out ${options.groupBy} groups against the other training groups${v.rounds > 1 ? `, the held-out groups rotated ${v.rounds} times` : ''}): P@5 ${v.p5.toFixed(3)}, raw ${v.rawP5.toFixed(3)}, random ${v.randomP5.toFixed(3)}\n` +
      `${spaceId(saved)}${options.default ? '; now the default (searches use it unless --space raw)' : `; search with --space ${name}`}\n`,
  );
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description(
      "Learn a space from the index's own vectors and labels (the backbone is not run again): a head from labels (--target, --group-by), " +
        'archive statistics (--normalize), or a text space from captions (--captions); kept in the index',
    )
    .requiredOption('--db <dir>', 'index directory')
    .option('--target <column>', 'label the head learns: slices with the same value come together (repeatable)', collect, [])
    .option('--slice-target <name=values>', 'a per-slice label from masks: a slice is NAME=yes when its mask holds one of VALUES there (e.g. tumour=2,3; repeatable; needs --masks)', collect, [])
    .option('--masks <csv>', "with --slice-target: a CSV pairing each indexed volume (path or name column, as --labels) with its mask on the volume's grid (mask column)")
    .option('--captions <column>', 'learn a text space from this caption label, so `mir3d search --text` works without a CLIP model')
    .option('--normalize', 'fit archive statistics: mean-centring (with --whiten: PCA-whitening)')
    .option('--group-by <column>', 'label keeping a patient together (e.g. patient): validation holds whole groups out')
    .option('--method <m>', 'head: lda (linear discriminant, default) or mlp (small MLP, supervised contrastive loss)', 'lda')
    .option('--whiten <dim>', 'with --normalize: PCA-whiten to this dimension', positiveInteger('--whiten'))
    .option('--sample <n>', 'with --normalize: fit on at most this many slice vectors (default 100000)', positiveInteger('--sample'))
    .option('--name <name>', `name of the space (default "head", "normalized", or ${DEFAULT_TEXT_SPACE} for --captions)`)
    .option('--seed <n>', 'seed of the validation split, samples and initial weights (default 1)', positiveInteger('--seed'), 1)
    .option('--steps <n>', 'most training steps or epochs (--captions default 300, --method mlp default 60)', positiveInteger('--steps'))
    .option('--default', 'make the new space the one searches use when none is named')
    .option('--set-default <name>', `make this stored space (or ${RAW_SPACE}) the default and exit`)
    .option('--remove <name>', 'remove this stored space and exit')
    .option('--list', 'list the spaces of the index and exit')
    .option('--no-progress', 'no progress display')
    .action(async (options: TrainCommandOptions) => {
      const modes = [options.captions !== undefined, options.target.length > 0 || options.sliceTarget.length > 0, options.normalize === true, options.list === true, options.setDefault !== undefined, options.remove !== undefined].filter(Boolean).length;
      if (modes !== 1) throw new InvalidArgumentError('give one of --target COLUMN or --slice-target NAME=VALUES (a head), --normalize, --captions COLUMN (a text space), --list, --set-default NAME or --remove NAME');
      if (!HEAD_METHODS.includes(options.method as HeadMethod)) throw new InvalidArgumentError(`--method: ${HEAD_METHODS.join(' or ')}`);
      if (options.captions !== undefined) {
        await trainCaptions({ db: options.db, captions: options.captions, ...(options.groupBy ? { groupBy: options.groupBy } : {}), ...(options.name ? { name: options.name } : {}), seed: options.seed, ...(options.steps ? { steps: options.steps } : {}), progress: options.progress });
        return;
      }
      if (!indexExists(options.db)) throw new StoreError('NOT_FOUND', options.db, 'no index here (create one with mir3d index)');
      const store = openStore(options.db);
      try {
        if (options.list) {
          process.stdout.write(listText(store));
        } else if (options.setDefault !== undefined) {
          setDefaultSpace(store, options.setDefault);
          process.stdout.write(`searches in ${options.db} now use ${options.setDefault === RAW_SPACE ? "the backbone's own vectors (raw)" : spaceId(loadSpace(store, options.setDefault).metadata)} unless --space names another\n`);
        } else if (options.remove !== undefined) {
          if (!removeSpace(store, options.remove)) throw new InvalidArgumentError(`--remove: no space "${options.remove}" in ${options.db}`);
          process.stdout.write(`removed space ${options.remove}\n`);
        } else if (options.normalize) {
          await normalize(store, options);
        } else {
          await head(store, options);
        }
      } finally {
        store.close();
      }
    });
}
