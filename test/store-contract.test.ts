/**
 * Every Store implementation against the contract in helpers/store-contract.ts: the embedded store as
 * `mir3d` opens it, the embedded store with the HNSW graph answering every approximate search (small blocks,
 * so volumes straddle them), and the in-memory test double the search tests use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { openStore, type OpenStoreOptions, type Store } from '../src/store/index.js';
import { FakeStore } from './helpers/fake-store.js';
import { storeContract, type StoreFactory } from './helpers/store-contract.js';

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function embedded(options: OpenStoreOptions): StoreFactory {
  const dirs = new WeakMap<Store, string>();
  const open = (dir: string, extra: OpenStoreOptions): Store => {
    const store = openStore(dir, { ...options, ...extra });
    dirs.set(store, dir);
    return store;
  };
  return {
    create: (encoderId, dim) => {
      const dir = mkdtempSync(join(tmpdir(), 'mir3d-contract-'));
      tempDirs.push(dir);
      return open(join(dir, 'index'), { encoderId, dim });
    },
    reopen: (closed) => open(dirs.get(closed)!, {}),
    openReadOnly: (store) => open(dirs.get(store)!, { readOnly: true }),
  };
}

storeContract('embedded (defaults)', embedded({}));
storeContract('embedded (HNSW for every approximate search, 40-row blocks)', embedded({ exactBelowSlices: 0, blockBytes: 40 * 24 * 4 }));
storeContract('in-memory test double', { create: (encoderId, dim) => new FakeStore(dim, encoderId) });
