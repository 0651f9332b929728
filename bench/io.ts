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

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
/** Debian's interpreter: python3-nibabel and python3-pydicom install there, not into a pyenv python. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

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
  for (let run = 0; run < RUNS; run++) {
    const start = process.hrtime.bigint();
    const volume = await readVolume(path);
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
    voxels = volume.data.length;
  }
  return { seconds: median(seconds), voxels };
}

function timePython(script: string, path: string): Timing | string {
  const output = execFileSync(PYTHON, [join(projectRoot, 'bench', script), path, String(RUNS)], { encoding: 'utf8' });
  const result = JSON.parse(output.trim().split('\n').pop() ?? '{}') as { seconds?: number[]; voxels?: number; error?: string };
  if (result.error || !result.seconds || result.voxels === undefined) return result.error ?? 'no result';
  return { seconds: median(result.seconds), voxels: result.voxels };
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
  process.stdout.write(`read + decompress + canonicalize, median of ${RUNS} runs, MB/s of int16 voxel data\n\n`);
  const header = `${'input'.padEnd(42)} ${'MB'.padStart(7)} ${'mir3d ms'.padStart(9)} ${'mir3d MB/s'.padStart(11)}  ${'reference'.padEnd(9)} ${'ref ms'.padStart(8)} ${'ref MB/s'.padStart(9)} ${'speed-up'.padStart(9)}`;
  process.stdout.write(`${header}\n${'-'.repeat(header.length)}\n`);
  for (const c of cases) {
    const ours = await timeMir3d(c.path, c.decodeThreads);
    let reference = 'not run (module missing)';
    let columns = `${'-'.padEnd(9)} ${'-'.padStart(8)} ${'-'.padStart(9)} ${'-'.padStart(9)}`;
    if (c.reference) {
      const theirs = timePython(c.reference.script, c.path);
      if (typeof theirs === 'string') reference = `${c.reference.name} failed: ${theirs}`;
      else {
        reference = '';
        columns = `${c.reference.name.padEnd(9)} ${(theirs.seconds * 1e3).toFixed(1).padStart(8)} ${mbPerSecond(theirs).toFixed(0).padStart(9)} ${`${(theirs.seconds / ours.seconds).toFixed(2)}×`.padStart(9)}`;
      }
    }
    process.stdout.write(
      `${c.label.padEnd(42)} ${((ours.voxels * 2) / 1e6).toFixed(1).padStart(7)} ${(ours.seconds * 1e3).toFixed(1).padStart(9)} ${mbPerSecond(ours).toFixed(0).padStart(11)}  ${columns}${reference ? `  ${reference}` : ''}\n`,
    );
  }
  process.stdout.write('\nspeed-up = reference time / mir3d time (above 1: mir3d is faster). DICOM voxel counts differ where mir3d\n' +
    'resamples (GE head: tilt and uneven gaps); pydicom there only stacks the slices. JPEG 2000 frames are decoded in\n' +
    `one worker per core from 2 cores (${availableParallelism()} here), in this thread on one core; MIR3D_DECODE_THREADS=N sets it;\n` +
    "pydicom decodes through Pillow's native OpenJPEG.\n" +
    `goals: DICOM ≥ 1× pydicom; GE head ≥ 0.5×. Load while measuring (1/5/15 min): ${loadavg().map((v) => v.toFixed(1)).join(' ')}\n`);
}

await main();
