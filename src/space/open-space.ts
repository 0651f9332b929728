/**
 * The one way to search an index in a learned space: `storeInSpace(store, name)` gives the index seen
 * through the space (a SpaceStore, built once per store and space for the life of the process: projecting
 * the archive is the costly part) or undefined for the backbone's own vectors. The default is the index's
 * chosen space ('raw' until `mir3d train … --default`).
 */
import type { Store } from '../store/types.js';
import { defaultSpaceName, loadSpace, RAW_SPACE } from './persist.js';
import { SpaceStore } from './space-store.js';

const views = new WeakMap<Store, Map<string, Promise<SpaceStore>>>();

/** The name a search uses: the one asked for, else the index's default. */
export function spaceNameFor(store: Store, asked: string | undefined): string {
  return asked ?? defaultSpaceName(store);
}

export async function storeInSpace(store: Store, asked: string | undefined): Promise<SpaceStore | undefined> {
  if (store instanceof SpaceStore) return store;
  const name = spaceNameFor(store, asked);
  if (name === RAW_SPACE) return undefined;
  // The recorded hash keys the view: a space retrained under the same name is another view.
  const key = `${name}@${loadSpace(store, name).metadata.modelSha256}`;
  let byName = views.get(store);
  if (!byName) views.set(store, (byName = new Map()));
  let view = byName.get(key);
  if (!view) {
    view = SpaceStore.open(store, name);
    view.catch(() => byName!.delete(key));
    byName.set(key, view);
  }
  return view;
}
