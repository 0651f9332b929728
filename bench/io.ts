/**
 * `npm run bench:io`: read + decompress + canonicalize throughput of mir3d's readers on the real CTs,
 * against nibabel (NIfTI) and pydicom (DICOM) doing the same work in the same run.
 * Figures: median of RUNS timed runs after one warm-up, MB/s of canonical voxel data (2 bytes a voxel).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { readVolume } from '../src/io/read.js';
import { hasSharedData, projectRoot, sharedDataDir, sharedPath } from '../test/helpers/shared-data.js';
import { median, timed } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
/** Rounds per case, mir3d and the reference alternating, so a change in load hits both alike. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
/** BENCH_ONLY=ge: only the cases whose label contains the text. */
const ONLY = process.env.BENCH_ONLY;
/** Debian's interpreter: python3-nibabel and python3-pydicom install there, not into a pyenv python. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function pythonHas(module: string): boolean {
  return spawnSync(PYTHON, ['-c', `import ${module}`]).status === 0;
}

/** Installs the Debian package when the module is missing and we may (root, apt present). */
function ensurePythonModule(module: string, debianPackage: string): boolean {
  if (pythonHas(module)) return true;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return false;
  process.stdout.write(`installing ${debianPackage} for the reference timing…\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
  spawnSync('apt-get', ['install', '-y', '-qq', debianPackage], { stdio: 'ignore', env });
  return pythonHas(module);
}

interface Timing {
  seconds: number;
  /** Median CPU seconds of one read, all threads of the process (for mir3d, decode workers included). */
  cpuSeconds: number;
  voxels: number;
}

async function timeMir3d(path: string, decodeThreads?: string): Promise<Timing> {
  const saved = process.env.MIR3D_DECODE_THREADS;
  if (decodeThreads !== undefined) process.env.MIR3D_DECODE_THREADS = decodeThreads;
  try {
    return await timeReads(path);
  } finally {
    if (saved === undefined) delete process.env.MIR3D_DECODE_THREADS;
    else process.env.MIR3D_DECODE_THREADS = saved;
  }
}

async function timeReads(path: string): Promise<Timing> {
  let voxels = (await readVolume(path)).data.length; // warm-up
  const seconds: number[] = [];
  const cpuSeconds: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const read = await timed(() => readVolume(path));
    seconds.push(read.seconds);
    cpuSeconds.push(read.cpuSeconds);
    voxels = read.value.data.length;
  }
  return { seconds: median(seconds), cpuSeconds: median(cpuSeconds), voxels };
}

function timePython(script: string, path: string): Timing | string {
  const output = execFileSync(PYTHON, [join(projectRoot, 'bench', script), path, String(RUNS)], { encoding: 'utf8' });
  const result = JSON.parse(output.trim().split('\n').pop() ?? '{}') as { seconds?: number[]; cpu_seconds?: number[]; voxels?: number; error?: string };
  if (result.error || !result.seconds || result.voxels === undefined) return result.error ?? 'no result';
  return { seconds: median(result.seconds), cpuSeconds: median(result.cpu_seconds ?? result.seconds), voxels: result.voxels };
}

const mbPerSecond = (t: Timing): number => (t.voxels * 2) / 1e6 / t.seconds;

async function main(): Promise<void> {
  if (!hasSharedData) {
    process.stdout.write(`bench:io needs the real CTs at ${sharedDataDir} (set MIR3D_SHARED_DATA); nothing measured\n`);
    return;
  }
  const haveNibabel = ensurePythonModule('nibabel', 'python3-nibabel');
  const havePydicom = ensurePythonModule('pydicom', 'python3-pydicom');
  const cases: { label: string; path: string; decodeThreads?: string; reference?: { name: string; script: string } }[] = [
    { label: 'ircad17/ct.nii.gz', path: sharedPath('ircad17/ct.nii.gz'), reference: haveNibabel ? { name: 'nibabel', script: 'nibabel_read.py' } : undefined },
    { label: 'totalseg/example_ct.nii.gz', path: sharedPath('totalseg/example_ct.nii.gz'), reference: haveNibabel ? { name: 'nibabel', script: 'nibabel_read.py' } : undefined },
    { label: 'ircad17/dicom (24 files)', path: sharedPath('ircad17/dicom'), reference: havePydicom ? { name: 'pydicom', script: 'pydicom_read.py' } : undefined },
    { label: 'totalseg/dicom (20, JPEG 2000), 1 thread', path: sharedPath('totalseg/dicom'), decodeThreads: '1', reference: havePydicom ? { name: 'pydicom', script: 'pydicom_read.py' } : undefined },
    { label: `  same, on ${Math.max(2, availableParallelism())} decode workers (default)`, path: sharedPath('totalseg/dicom'), decodeThreads: String(Math.max(2, availableParallelism())), reference: havePydicom ? { name: 'pydicom', script: 'pydicom_read.py' } : undefined },
    { label: 'ge-head-ct-dicom (28, tilt)', path: sharedPath('ge-head-ct-dicom'), reference: havePydicom ? { name: 'pydicom', script: 'pydicom_read.py' } : undefined },
  ];
  process.stdout.write(`read + decompress + canonicalize, median of ${RUNS} runs, MB/s of int16 voxel data; ${ROUNDS} rounds per input,\n` +
    'mir3d and the reference alternating; speed-up is the median over the rounds of the rounds\' ratios\n\n');
  const header = `${'input'.padEnd(42)} ${'MB'.padStart(7)} ${'mir3d ms'.padStart(9)} ${'mir3d MB/s'.padStart(11)}  ${'reference'.padEnd(9)} ${'ref ms'.padStart(8)} ${'ref MB/s'.padStart(9)} ${'speed-up'.padStart(9)} ${'cpu'.padStart(6)}  rounds`;
  process.stdout.write(`${header}\n${'-'.repeat(header.length)}\n`);
  for (const c of cases) {
    if (ONLY && !c.label.includes(ONLY)) continue;
    const ours: Timing[] = [];
    const theirs: Timing[] = [];
    let problem = c.reference ? '' : 'not run (module missing)';
    for (let round = 0; round < ROUNDS; round++) {
      ours.push(await timeMir3d(c.path, c.decodeThreads));
      if (!c.reference || problem) continue;
      const t = timePython(c.reference.script, c.path);
      if (typeof t === 'string') problem = `${c.reference.name} failed: ${t}`;
      else theirs.push(t);
    }
    const mine: Timing = { seconds: median(ours.map((t) => t.seconds)), cpuSeconds: median(ours.map((t) => t.cpuSeconds)), voxels: ours[0].voxels };
    let columns = `${'-'.padEnd(9)} ${'-'.padStart(8)} ${'-'.padStart(9)} ${'-'.padStart(9)} ${'-'.padStart(6)}`;
    if (c.reference && !problem) {
      const ratios = theirs.map((t, r) => t.seconds / ours[r].seconds);
      const cpuRatios = theirs.map((t, r) => t.cpuSeconds / ours[r].cpuSeconds);
      const ref: Timing = { seconds: median(theirs.map((t) => t.seconds)), cpuSeconds: 0, voxels: theirs[0].voxels };
      columns = `${c.reference.name.padEnd(9)} ${(ref.seconds * 1e3).toFixed(1).padStart(8)} ${mbPerSecond(ref).toFixed(0).padStart(9)} ${`${median(ratios).toFixed(2)}×`.padStart(9)} ${`${median(cpuRatios).toFixed(2)}×`.padStart(6)}  ${ratios.map((r) => r.toFixed(2)).join(' ')}`;
    }
    process.stdout.write(
      `${c.label.padEnd(42)} ${((mine.voxels * 2) / 1e6).toFixed(1).padStart(7)} ${(mine.seconds * 1e3).toFixed(1).padStart(9)} ${mbPerSecond(mine).toFixed(0).padStart(11)}  ${columns}${problem ? `  ${problem}` : ''}\n`,
    );
  }
  process.stdout.write('\nspeed-up = reference time / mir3d time (above 1: mir3d is faster); cpu = the same for CPU time (all threads),\n' +
    'which a busy machine disturbs less than wall time. DICOM voxel counts differ where mir3d\n' +
    'resamples (GE head: tilt and uneven gaps); pydicom there only stacks the slices. JPEG 2000 frames are decoded in\n' +
    `one worker per core from 2 cores (${availableParallelism()} here), in this thread on one core; MIR3D_DECODE_THREADS=N sets it;\n` +
    "pydicom decodes through Pillow's native OpenJPEG.\n" +
    `goals: DICOM ≥ 1× pydicom; GE head ≥ 0.5×. Load while measuring (1/5/15 min): ${loadavg().map((v) => v.toFixed(1)).join(' ')}\n`);
}

await main();
