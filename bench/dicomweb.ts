/**
 * `npm run bench:dicomweb`: ingest throughput from a real Orthanc over DICOMweb against reading the same
 * DICOM files from disk, in one run (ratios are what to compare; the shared machine makes absolute times
 * noisy). Two levels:
 * - read: series → canonical volume + its SHA-256 (disk: io's reader on the folder; PACS: WADO-RS
 *   multipart fetch, parse, io's reader on the bytes), BENCH_RUNS rounds, median, three series at a time
 *   as the sync fetches them;
 * - index: the whole `mir3d index` path into a fresh index with the baseline encoder (disk: indexVolumes
 *   on the folders; PACS: syncDicomWeb, QIDO-RS included).
 * Both read warm files (the page cache holds the folders and Orthanc's storage after the first round).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEncoder } from '../src/encode/registry.js';
import { fetchSeriesVolume } from '../src/ingest/dicomweb-fetch.js';
import { syncDicomWeb } from '../src/ingest/dicomweb-sync.js';
import { indexVolumes } from '../src/ingest/indexer.js';
import { readDicomSeries, seriesKeyOf } from '../src/io/dicom.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { DicomWebClient } from '../src/source/dicomweb/client.js';
import { PacsState } from '../src/source/dicomweb/pacs-state.js';
import { parseDicomWebUrl } from '../src/source/dicomweb/url.js';
import { openStore } from '../src/store/index.js';
import { totalSegWithUids } from '../test/helpers/dicom-uids.js';
import { skipWithoutOrthanc, startOrthanc, type UploadedSeries } from '../test/helpers/orthanc.js';
import { hasSharedData, sharedPath } from '../test/helpers/shared-data.js';
import { median } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const FOLDERS = ['ircad17/dicom', 'totalseg/dicom', 'ge-head-ct-dicom'];

async function timed(work: () => Promise<number>): Promise<{ seconds: number; bytes: number }> {
  const started = performance.now();
  const bytes = await work();
  return { seconds: (performance.now() - started) / 1000, bytes };
}

const skip = !hasSharedData ? 'the shared DICOM series are not there (../shared/data)' : skipWithoutOrthanc();
if (skip) {
  process.stdout.write(`bench:dicomweb skipped: ${skip}\n`);
  process.exit(0);
}

const orthanc = await startOrthanc();
const work = mkdtempSync(join(tmpdir(), 'mir3d-bench-dicomweb-'));
try {
  const series: UploadedSeries[] = [];
  for (const folder of FOLDERS) series.push(await orthanc.uploadFolder(sharedPath(folder), folder.startsWith('totalseg') ? totalSegWithUids : undefined));
  const endpoint = parseDicomWebUrl(orthanc.dicomWebUrl).endpoint;
  const credentials = { kind: 'basic' as const, user: orthanc.user, password: orthanc.password };
  const client = new DicomWebClient(endpoint, { credentials });

  const fromDisk = (): Promise<number> =>
    Promise.all(FOLDERS.map(async (f) => {
      const volume = await readDicomSeries(sharedPath(f));
      canonicalInt16Sha256(volume);
      return volume.data.length * 2;
    })).then((b) => b.reduce((x, y) => x + y, 0));
  const fromPacs = (): Promise<number> =>
    Promise.all(series.map(async (s) => {
      const fetched = await fetchSeriesVolume(client, s, { seriesKey: seriesKeyOf(s.seriesInstanceUid) });
      canonicalInt16Sha256(fetched.volume!);
      return fetched.volume!.data.length * 2;
    })).then((b) => b.reduce((x, y) => x + y, 0));

  await fromDisk();
  await fromPacs();
  const disk: number[] = [];
  const pacs: number[] = [];
  let voxelBytes = 0;
  for (let n = 0; n < RUNS; n++) {
    // Alternate, so load on the shared machine falls on both alike.
    const d = await timed(fromDisk);
    const p = await timed(fromPacs);
    disk.push(d.seconds);
    pacs.push(p.seconds);
    voxelBytes = d.bytes;
  }
  await client.close();
  const mb = voxelBytes / 1024 ** 2;
  const diskS = median(disk);
  const pacsS = median(pacs);

  // Whole index path, baseline encoder, fresh index each.
  const encoder = await openEncoder('baseline');
  const diskDb = join(work, 'disk');
  const diskStore = openStore(diskDb, { encoderId: encoder.id, dim: encoder.dim });
  const diskIndex = await timed(async () => {
    await indexVolumes(FOLDERS.map((f) => ({ path: sharedPath(f), kind: 'dicom' as const })), { store: diskStore, encoder, useWorker: false });
    return 0;
  });
  diskStore.close();
  const pacsDb = join(work, 'pacs');
  const pacsStore = openStore(pacsDb, { encoderId: encoder.id, dim: encoder.dim });
  const syncClient = new DicomWebClient(endpoint, { credentials });
  const pacsIndex = await timed(async () => {
    await syncDicomWeb({ client: syncClient, store: pacsStore, encoder, state: new PacsState(pacsStore.state), useWorker: false });
    return 0;
  });
  pacsStore.close();
  await syncClient.close();
  await encoder.close();

  const rows = [
    ['read: series → canonical volume + SHA-256', `${(mb / diskS).toFixed(0)} MB/s (${(3 / diskS).toFixed(1)} series/s)`, `${(mb / pacsS).toFixed(0)} MB/s (${(3 / pacsS).toFixed(1)} series/s)`, `${(diskS / pacsS).toFixed(2)}×`],
    ['index: mir3d index path, baseline encoder', `${diskIndex.seconds.toFixed(2)} s`, `${pacsIndex.seconds.toFixed(2)} s`, `${(diskIndex.seconds / pacsIndex.seconds).toFixed(2)}×`],
  ];
  process.stdout.write(`bench:dicomweb — 3 series (IRCADb-17, TotalSegmentator, GE head: ${mb.toFixed(0)} MB of canonical voxels), Orthanc ${orthanc.httpUrl} (loopback, HTTP auth), read median of ${RUNS}\n\n`);
  process.stdout.write(`| level | from disk | from Orthanc over DICOMweb | PACS / disk throughput |\n|---|---:|---:|---:|\n`);
  for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);
  process.stdout.write(`\ngoal: ≥ 0.70× of disk; ${diskS / pacsS >= 0.7 ? 'met' : 'not met'} at the read level, ${diskIndex.seconds / pacsIndex.seconds >= 0.7 ? 'met' : 'not met'} end to end\n`);
} finally {
  await orthanc.dispose();
  rmSync(work, { recursive: true, force: true });
}
