import type { Vec3 } from '../io/volume.js';
import type { PhantomOptions, PhantomTruth } from '../synth/index.js';

/**
 * What the demo's steps share: its options and one context every step reads and extends. Kept apart
 * from the steps so that they import it, not each other.
 */

export interface DemoOptions {
  outDir: string;
  count: number;
  seed: number;
  /** Where the summary goes (stdout in the CLI). */
  print: (text: string) => void;
  /** Show a progress bar (on stderr, only when it is a terminal). */
  progress: boolean;
}

export interface DemoPhantomFiles {
  /** Paths relative to the demo's out dir, as written into demo.json. */
  ct: string;
  labels: string;
  truth: string;
  coronalPng: string;
}

export interface DemoPhantom {
  id: string;
  dir: string;
  options: PhantomOptions;
  files: DemoPhantomFiles;
  truth: PhantomTruth;
  /** SHA-256 of the canonical int16 voxels as generated, and as read back from ct.nii.gz. */
  sha256Generated: string;
  readBack?: { dims: Vec3; spacingMm: Vec3; zRangeMm: [number, number]; sha256Int16: string; orientation: string };
}

export interface DemoContext {
  options: DemoOptions;
  phantoms: DemoPhantom[];
  /** Seconds per step, by step name. */
  timingsS: Record<string, number>;
}

export interface DemoStep {
  name: string;
  run(context: DemoContext): Promise<void>;
}
