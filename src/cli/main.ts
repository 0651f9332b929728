#!/usr/bin/env node
import { Command } from 'commander';
import { EncoderError } from '../encode/errors.js';
import { VolumeReadError } from '../io/errors.js';
import { SearchError } from '../search/errors.js';
import { StoreError } from '../store/errors.js';
import { registerDemo } from './demo.js';
import { registerEmbed } from './embed.js';
import { registerEval } from './eval.js';
import { registerIndex } from './index-command.js';
import { registerSearch } from './search-command.js';
import { registerServe } from './serve.js';
import { registerInfo } from './info.js';

const program = new Command();
program
  .name('mir3d')
  .description('Content-based retrieval of 3D medical images (CT): which scans look like this one, and where.')
  .version(process.env.npm_package_version ?? '0.1.0')
  .showHelpAfterError();

registerInfo(program);
registerDemo(program);
registerEmbed(program);
registerIndex(program);
registerSearch(program);
registerServe(program);
registerEval(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Input problems (a bad file, model, index or query) are expected and get one clear line with their
  // code; anything else is a bug and keeps its stack.
  if (error instanceof VolumeReadError || error instanceof EncoderError || error instanceof StoreError || error instanceof SearchError) {
    process.stderr.write(`mir3d: ${error.message} [${error.code}]\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`mir3d: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}
