import { join } from 'node:path';
import { ensureToken } from '../server/auth.js';
import type { RunningServer } from '../server/app.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/defaults.js';
import type { DemoContext, DemoStep } from './demo-steps.js';
import { displayPath } from './format.js';
import { serverBanner, serveUntilSignal } from './serve.js';

/**
 * The demo's last word: where to browse its results. The token is made here (as `mir3d serve` would on
 * its first start), so the printed URL opens the page straight away.
 */

export const demoServeHintStep: DemoStep = {
  name: 'browse',
  async run(context: DemoContext) {
    const { outDir, print } = context.options;
    const indexDir = join(outDir, 'index');
    const { token } = await ensureToken(indexDir);
    print(`\nbrowse the results: npx mir3d serve --db ${displayPath(indexDir)}  → http://${DEFAULT_HOST}:${DEFAULT_PORT}/#token=${token}\n`);
  },
};

/** `mir3d demo --serve`: serves the demo index until Ctrl-C (the default port, else a free one). */
export async function serveDemoIndex(outDir: string): Promise<void> {
  const dbDir = join(outDir, 'index');
  const { startServer } = await import('../server/app.js');
  let server: RunningServer;
  try {
    server = await startServer({ dbDir, port: DEFAULT_PORT });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    process.stderr.write(`mir3d demo: port ${DEFAULT_PORT} is in use; serving on a free port instead\n`);
    server = await startServer({ dbDir, port: 0 });
  }
  process.stdout.write(`\n${serverBanner(server, dbDir)}`);
  await serveUntilSignal(server);
}
