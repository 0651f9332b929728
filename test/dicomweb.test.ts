import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openIndex } from '../src/ingest/open-index.js';
import { syncDicomWeb } from '../src/ingest/dicomweb-sync.js';
import { readDicomSeries } from '../src/io/dicom.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { DicomWebClient } from '../src/source/dicomweb/client.js';
import { PacsState } from '../src/source/dicomweb/pacs-state.js';
import { parseDicomWebUrl } from '../src/source/dicomweb/url.js';
import { openStore } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';
import { totalSegWithUids } from './helpers/dicom-uids.js';
import { skipWithoutOrthanc, startOrthanc, type OrthancServer, type UploadedSeries } from './helpers/orthanc.js';
import { hasSharedData, sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const skip = skipWithoutSharedData || skipWithoutOrthanc();
const work = mkdtempSync(join(tmpdir(), 'mir3d-dicomweb-'));
after(() => rmSync(work, { recursive: true, force: true }));

const SERIES = {
  ircad: 'ircad17/dicom',
  totalseg: 'totalseg/dicom',
  head: 'ge-head-ct-dicom',
} as const;
type SeriesName = keyof typeof SERIES;

async function upload(orthanc: OrthancServer, name: SeriesName): Promise<UploadedSeries> {
  return orthanc.uploadFolder(sharedPath(SERIES[name]), name === 'totalseg' ? totalSegWithUids : undefined);
}

interface IndexJson {
  seriesFound: number;
  indexed: number;
  unchanged: number;
  skipped: number;
  failed: number;
  seriesFetched: number;
  outcomes: Array<{ status: string; seriesKey: string; volumeId?: string; reason?: string; fetched?: boolean }>;
  stoppedBy?: { code: string; message: string };
}

function indexJson(orthanc: OrthancServer, db: string, extra: string[] = [], env: Record<string, string> = orthanc.credentialsEnv): { status: number | null; json?: IndexJson; stderr: string } {
  const run = runCli(['index', orthanc.dicomWebUrl, '--db', db, '--encoder', 'baseline', '--json', '--no-progress', ...extra], 180_000, env);
  let json: IndexJson | undefined;
  try {
    json = JSON.parse(run.stdout) as IndexJson;
  } catch {
    json = undefined;
  }
  return { status: run.status, ...(json ? { json } : {}), stderr: run.stderr };
}

const diskHashes = new Map<SeriesName, string>();
async function diskHash(name: SeriesName): Promise<string> {
  if (!diskHashes.has(name)) diskHashes.set(name, canonicalInt16Sha256(await readDicomSeries(sharedPath(SERIES[name]))));
  return diskHashes.get(name)!;
}

function indexedHashes(db: string): string[] {
  const store = openStore(db, { readOnly: true });
  try {
    return store.listVolumes().map((r) => r.contentSha256).sort();
  } finally {
    store.close();
  }
}

describe('DICOMweb source against a real Orthanc', { skip }, () => {
  let orthanc: OrthancServer;
  const uploaded = new Map<SeriesName, UploadedSeries>();
  before(async () => {
    if (skip) return;
    orthanc = await startOrthanc();
  });
  after(async () => {
    await orthanc?.dispose();
  });

  test('the test Orthanc listens on loopback only (HTTP pinned, DICOM port off)', () => {
    const addresses = orthanc.listeningAddresses();
    assert.deepEqual(addresses, [`127.0.0.1:${orthanc.port}`]);
  });

  test('series indexed over DICOMweb hash like the files on disk; a second sync fetches only the new series', async () => {
    uploaded.set('ircad', await upload(orthanc, 'ircad'));
    uploaded.set('head', await upload(orthanc, 'head'));
    const db = join(work, 'sync');
    const first = indexJson(orthanc, db);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.json?.indexed, 2, first.stderr);
    assert.equal(first.json?.seriesFetched, 2);
    assert.deepEqual(indexedHashes(db), [await diskHash('ircad'), await diskHash('head')].sort());

    uploaded.set('totalseg', await upload(orthanc, 'totalseg'));
    const second = indexJson(orthanc, db);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.json?.seriesFound, 3);
    assert.equal(second.json?.indexed, 1);
    assert.equal(second.json?.seriesFetched, 1, 'only the new series is fetched');
    assert.equal(second.json?.outcomes.filter((o) => o.status === 'unchanged' && o.fetched === false).length, 2);
    assert.deepEqual(indexedHashes(db), [await diskHash('ircad'), await diskHash('head'), await diskHash('totalseg')].sort());

    const third = indexJson(orthanc, db);
    assert.equal(third.json?.seriesFetched, 0);
    assert.equal(third.json?.unchanged, 3);
  });

  test('search by a series in the PACS: fetched and embedded, not added; each result links to its best-matching slice', async () => {
    const db = join(work, 'sync');
    const before = indexedHashes(db);
    const query = uploaded.get('ircad')!;
    const template = 'https://viewer.example/viewer?StudyInstanceUIDs={study}&SeriesInstanceUIDs={series}&initialSopInstanceUID={sop}';
    const run = runCli(['search', `${orthanc.dicomWebUrl}/studies/${query.studyInstanceUid}/series/${query.seriesInstanceUid}`, '--db', db, '--k', '100', '--viewer-url', template, '--json'], 120_000, orthanc.credentialsEnv);
    assert.equal(run.status, 0, run.stderr);
    const reply = JSON.parse(run.stdout) as {
      query: { volumeId?: string };
      results: Array<{ volumeId: string; matches: Array<{ targetSlice: number; similarity: number }>; viewer?: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string; url: string } }>;
    };
    assert.deepEqual(indexedHashes(db), before, 'the query was not added');
    assert.ok(reply.query.volumeId, 'the PACS copy is recognised as the indexed volume (same content)');
    assert.equal(reply.results.length, 2, 'the two other series (k = 100 reaches every slice)');
    const store = openStore(db, { readOnly: true });
    try {
      for (const result of reply.results) {
        const viewer = result.viewer;
        assert.ok(viewer, `result ${result.volumeId} has a viewer link`);
        const series = [...uploaded.values()].find((u) => u.seriesInstanceUid === viewer.seriesInstanceUid);
        assert.ok(series, 'the link names an uploaded series');
        assert.equal(viewer.studyInstanceUid, series.studyInstanceUid);
        // The best-matching slice's z in the result volume, and the instance Orthanc holds nearest to it.
        const best = result.matches.reduce((a, m) => (m.similarity > a.similarity ? m : a));
        const vectors = store.getVectors([result.volumeId]).get(result.volumeId)!;
        const zMm = vectors.zMm[Array.from(vectors.sliceIndices).indexOf(best.targetSlice)];
        const instances = (await (await orthanc.rest(`/series/${series.orthancSeriesId}/instances`)).json()) as Array<{ MainDicomTags: { SOPInstanceUID: string; ImagePositionPatient: string } }>;
        const nearest = instances
          .map((i) => ({ sop: i.MainDicomTags.SOPInstanceUID, z: Number(i.MainDicomTags.ImagePositionPatient.split('\\')[2]) }))
          .sort((a, b) => Math.abs(a.z - zMm) - Math.abs(b.z - zMm))[0];
        assert.equal(viewer.sopInstanceUid, nearest.sop);
        assert.equal(viewer.url, `https://viewer.example/viewer?StudyInstanceUIDs=${series.studyInstanceUid}&SeriesInstanceUIDs=${series.seriesInstanceUid}&initialSopInstanceUID=${nearest.sop}`);
      }
    } finally {
      store.close();
    }
  });

  test('--pseudonymize: no UID anywhere in the index; links are resolved back through QIDO-RS', async () => {
    const db = join(work, 'pseudonymized');
    const secret = join(work, 'secret');
    writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o644 });
    const open = indexJson(orthanc, db, ['--pseudonymize', secret]);
    assert.equal(open.status, 2);
    assert.match(open.stderr.trim(), /readable by other users .*\[CREDENTIALS\]$/);
    chmodSync(secret, 0o600);
    const run = indexJson(orthanc, db, ['--pseudonymize', secret]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.json?.indexed, 3);
    const uids = [...uploaded.values()].flatMap((u) => [u.studyInstanceUid, u.seriesInstanceUid]);
    const instances = (await (await orthanc.rest(`/series/${uploaded.get('head')!.orthancSeriesId}/instances`)).json()) as Array<{ MainDicomTags: { SOPInstanceUID: string } }>;
    uids.push(...instances.map((i) => i.MainDicomTags.SOPInstanceUID));
    for (const file of readdirSync(db)) {
      const bytes = readFileSync(join(db, file));
      for (const uid of uids) assert.ok(!bytes.includes(uid), `${file} holds no UID`);
    }
    const plain = indexJson(orthanc, db);
    assert.equal(plain.status, 2, 'a pseudonymized index refuses a plain sync');

    const query = uploaded.get('head')!;
    const search = runCli(['search', `${orthanc.dicomWebUrl}/studies/${query.studyInstanceUid}/series/${query.seriesInstanceUid}`, '--db', db, '--k', '100', '--pseudonymize', secret, '--viewer-url', 'http://orthanc/stone-webviewer/index.html?study={study}&series={series}', '--json'], 120_000, orthanc.credentialsEnv);
    assert.equal(search.status, 0, search.stderr);
    const reply = JSON.parse(search.stdout) as { results: Array<{ viewer?: { studyInstanceUid: string; seriesInstanceUid: string; url: string } }> };
    assert.equal(reply.results.length, 2);
    for (const r of reply.results) {
      const series = [...uploaded.values()].find((u) => u.seriesInstanceUid === r.viewer?.seriesInstanceUid);
      assert.ok(series, 'resolved to a real series UID');
      assert.equal(r.viewer!.url, `http://orthanc/stone-webviewer/index.html?study=${series.studyInstanceUid}&series=${series.seriesInstanceUid}`);
    }
  });

  test('too-few-slices series are skipped with the reason', async () => {
    const db = join(work, 'min-slices');
    const run = indexJson(orthanc, db, ['--min-slices', '25']);
    assert.equal(run.status, 0, run.stderr);
    const skipped = run.json!.outcomes.filter((o) => o.status === 'skipped');
    assert.equal(skipped.length, 2, JSON.stringify(run.json?.outcomes));
    for (const o of skipped) assert.match(o.reason ?? '', /instance\(s\), fewer than 25 slices/);
    assert.equal(run.json?.indexed, 1, 'the 28-slice head series is indexed');
  });

  test('wrong credentials, a non-DICOMweb address, credentials in the address, no server: one line each, exit 2', async () => {
    const db = join(work, 'errors');
    const cases: Array<{ args: string[]; env: Record<string, string>; code: string }> = [
      { args: [orthanc.dicomWebUrl], env: { MIR3D_DICOMWEB_USER: orthanc.user, MIR3D_DICOMWEB_PASSWORD: 'wrong' }, code: 'UNAUTHORIZED' },
      { args: [`dicomweb+${orthanc.httpUrl}`], env: orthanc.credentialsEnv, code: 'NOT_DICOMWEB' },
      { args: [`dicomweb+${orthanc.httpUrl}/app`], env: orthanc.credentialsEnv, code: 'NOT_DICOMWEB' },
      { args: [`dicomweb+http://${orthanc.user}:${orthanc.password}@127.0.0.1:${orthanc.port}/dicom-web`], env: {}, code: 'BAD_URL' },
      { args: ['dicomweb+http://127.0.0.1:9/dicom-web'], env: orthanc.credentialsEnv, code: 'UNREACHABLE' },
    ];
    for (const c of cases) {
      const run = runCli(['index', ...c.args, '--db', db, '--encoder', 'baseline', '--no-progress'], 60_000, c.env);
      assert.equal(run.status, 2, `${c.code}: ${run.stderr}`);
      const lines = run.stderr.trim().split('\n');
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0], new RegExp(`\\[${c.code}\\]$`));
      assert.ok(!run.stderr.includes(orthanc.password), 'the password never appears');
    }
  });

  test('Orthanc stopped in the middle of a sync: clear error, what is done stays, a rerun completes without duplicates', async () => {
    const own = await startOrthanc();
    try {
      for (const name of ['ircad', 'head', 'totalseg'] as const) await upload(own, name);
      const db = join(work, 'interrupted');
      const endpoint = parseDicomWebUrl(own.dicomWebUrl).endpoint;
      const credentials = { kind: 'basic' as const, user: own.user, password: own.password };
      const sync = async (onIndexed?: () => Promise<void>) => {
        const index = await openIndex(db, { spec: { encoder: 'baseline' } });
        const { store } = index;
        const encoder = await index.encoder();
        const state = new PacsState(store.state);
        const client = new DicomWebClient(endpoint, { credentials });
        try {
          let stopped: Promise<void> | undefined;
          return await syncDicomWeb({
            client, store, encoder, state, concurrency: 1,
            onOutcome: (o) => {
              if (o.status === 'indexed' && onIndexed && !stopped) stopped = onIndexed();
            },
            onProgress: () => undefined,
          }).then(async (summary) => {
            await stopped;
            return summary;
          });
        } finally {
          await index.close();
          await client.close();
        }
      };
      const first = await sync(() => own.stop('SIGKILL'));
      assert.equal(first.stoppedBy?.code, 'UNREACHABLE', JSON.stringify(first.outcomes));
      assert.match(first.stoppedBy!.message, /cannot be reached/);
      assert.ok(!/\d+\.\d+\.\d+\.\d+\.\d+/.test(first.stoppedBy!.message), 'no UID in the message');
      assert.equal(first.indexed, 1);
      assert.equal(first.notReached, 2);
      assert.equal(indexedHashes(db).length, 1);

      await own.restart();
      const second = await sync();
      assert.equal(second.stoppedBy, undefined);
      assert.equal(second.indexed, 2);
      assert.equal(second.unchanged, 1);
      const hashes = indexedHashes(db);
      assert.equal(hashes.length, 3);
      assert.equal(new Set(hashes).size, 3, 'no duplicate');
    } finally {
      await own.dispose();
    }
  });

  test('a series Orthanc cannot deliver is recorded as failed in one line; the others are indexed', async () => {
    const own = await startOrthanc();
    try {
      await upload(own, 'ircad');
      const broken = await upload(own, 'head');
      // Remove one stored file behind Orthanc's back: its index still lists the instance.
      const instances = (await (await own.rest(`/series/${broken.orthancSeriesId}/instances`)).json()) as Array<{ ID: string }>;
      const info = (await (await own.rest(`/instances/${instances[3].ID}/attachments/dicom/info`)).json()) as { Uuid: string };
      unlinkSync(join(own.storageDir, 'db', info.Uuid.slice(0, 2), info.Uuid.slice(2, 4), info.Uuid));
      const db = join(work, 'undeliverable');
      const run = indexJson(own, db);
      assert.equal(run.status, 1, run.stderr);
      assert.equal(run.json?.indexed, 1);
      const failed = run.json!.outcomes.filter((o) => o.status === 'failed');
      assert.equal(failed.length, 1);
      assert.equal(failed[0].reason?.split('\n').length, 1);
      assert.match(failed[0].reason ?? '', /UNDELIVERABLE/);
    } finally {
      await own.dispose();
    }
  });
});

if (!hasSharedData) test('DICOMweb tests need the shared DICOM series', { skip: skipWithoutSharedData }, () => undefined);
