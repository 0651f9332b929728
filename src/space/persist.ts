/**
 * Spaces kept in an index, as the store's named artifacts of kind 'space': the ONNX graph as bytes, its
 * description (what it is, what it was learned from, the SHA-256 of the graph) as metadata, and the
 * space searches use when none is named in the index state. The backbone vectors stay in the store
 * untouched, so a space is added, refitted or removed without re-running the backbone, and a space lives
 * and dies with its index.
 */
import type { JsonObject, Store } from '../store/types.js';
import { SpaceError } from './errors.js';
import { sha256Hex } from './graph.js';

export const SPACE_ARTIFACT_KIND = 'space';
const STATE_NAMESPACE = 'spaces';
/** The backbone's own vectors: always there, never stored. */
export const RAW_SPACE = 'raw';

export type SpaceKind = 'normalization' | 'head';

export interface SpaceMetadata {
  format: 'mir3d-space/1';
  name: string;
  kind: SpaceKind;
  /** Encoder id of the backbone vectors it was learned from (the index's). */
  encoderId: string;
  inputDim: number;
  outputDim: number;
  modelSha256: string;
  createdAt: string;
  /** How it was learned: method, targets, group column, seed, chosen settings, validation figures. */
  training: JsonObject;
}

export interface StoredSpace {
  metadata: SpaceMetadata;
  model: Uint8Array;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkSpaceName(name: string): void {
  if (!NAME.test(name) || name === RAW_SPACE || name === 'default') {
    throw new SpaceError('BAD_NAME', name, `a space name is 1–64 letters, digits, '.', '_' or '-' (not "raw" or "default")`);
  }
}

/** Stable id of a space, part of what its vectors mean: a changed graph is another space. */
export function spaceId(metadata: Pick<SpaceMetadata, 'name' | 'modelSha256'>): string {
  return `space:${metadata.name}@${metadata.modelSha256.slice(0, 12)}`;
}

export function saveSpace(store: Store, metadata: Omit<SpaceMetadata, 'format' | 'modelSha256' | 'createdAt'>, model: Uint8Array): SpaceMetadata {
  checkSpaceName(metadata.name);
  const full: SpaceMetadata = { format: 'mir3d-space/1', ...metadata, modelSha256: sha256Hex(model), createdAt: new Date().toISOString() };
  store.artifacts.put(SPACE_ARTIFACT_KIND, metadata.name, model, full as unknown as JsonObject);
  return full;
}

function checkMetadata(value: JsonObject, where: string): SpaceMetadata {
  const metadata = value as unknown as SpaceMetadata;
  if (metadata?.format !== 'mir3d-space/1' || typeof metadata.modelSha256 !== 'string' || !Number.isInteger(metadata.inputDim)) {
    throw new SpaceError('CORRUPT_SPACE', where, 'not a mir3d space description (format mir3d-space/1)');
  }
  return metadata;
}

export function listSpaces(store: Store): SpaceMetadata[] {
  return store.artifacts.list(SPACE_ARTIFACT_KIND).map((info) => checkMetadata(info.metadata, `space ${info.name}`));
}

/** Reads a space and checks its graph against the hash recorded when it was trained (damaged or
 * replaced bytes are caught here, by name, before ONNX Runtime sees them). */
export function loadSpace(store: Store, name: string): StoredSpace {
  if (name === RAW_SPACE) throw new SpaceError('UNKNOWN_SPACE', name, '"raw" is the backbone itself, not a stored space');
  checkSpaceName(name);
  const artifact = store.artifacts.get(SPACE_ARTIFACT_KIND, name);
  if (!artifact) {
    throw new SpaceError('UNKNOWN_SPACE', name, `no space "${name}" in this index (spaces: ${[RAW_SPACE, ...listSpaces(store).map((s) => s.name)].join(', ')})`);
  }
  const metadata = checkMetadata(artifact.metadata, `space ${name}`);
  if (sha256Hex(artifact.bytes) !== metadata.modelSha256) {
    throw new SpaceError('CORRUPT_SPACE', `space ${name}`, 'its ONNX graph does not match the SHA-256 recorded when it was trained (damaged or replaced); retrain it with mir3d train');
  }
  if (metadata.encoderId !== store.encoderId || metadata.inputDim !== store.dim) {
    throw new SpaceError('SPACE_MISMATCH', `space ${name}`, `learned from ${metadata.inputDim}-d vectors of ${metadata.encoderId}; this index holds ${store.dim}-d vectors of ${store.encoderId}`);
  }
  return { metadata, model: artifact.bytes };
}

export function removeSpace(store: Store, name: string): boolean {
  checkSpaceName(name);
  if (defaultSpaceName(store) === name) store.state.delete(STATE_NAMESPACE, 'default');
  return store.artifacts.delete(SPACE_ARTIFACT_KIND, name);
}

/** The space searches use when none is named: 'raw' until one is chosen. */
export function defaultSpaceName(store: Store): string {
  const value = store.state.get(STATE_NAMESPACE, 'default');
  return typeof value === 'string' ? value : RAW_SPACE;
}

export function setDefaultSpace(store: Store, name: string): void {
  if (name !== RAW_SPACE) loadSpace(store, name);
  store.state.set(STATE_NAMESPACE, 'default', name);
}
