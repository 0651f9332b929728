/**
 * Child process of the store crash test: adds volumes 0..count−1 (deterministic content, skipping those
 * already indexed) and saves the HNSW index every few volumes, printing one line per volume, until done
 * or killed. Usage: node storeCrashWriter.js <dir> <count> <dim> <rows>
 */
import { openStore } from '../../src/store/index.js';
import { crashVolume, CRASH_ENCODER_ID } from './store-crash-volumes.js';

const [dir, countText, dimText, rowsText] = process.argv.slice(2);
const count = Number(countText);
const dim = Number(dimText);
const rows = Number(rowsText);
const store = openStore(dir, { encoderId: CRASH_ENCODER_ID, dim });
process.stdout.write('open\n');
for (let i = 0; i < count; i++) {
  const volume = crashVolume(i, dim, rows);
  if (store.findByContent(volume.record.contentSha256)) continue;
  store.addVolume(volume.record, volume.vectors, CRASH_ENCODER_ID);
  process.stdout.write(`added ${i}\n`);
  if (i % 7 === 6) await store.buildApproximateIndex?.();
}
await store.buildApproximateIndex?.();
store.close();
process.stdout.write('done\n');
