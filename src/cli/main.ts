#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { describeCauses, isExpectedError } from '../errors.js';
import { registerDemo } from './demo.js';
import { registerEmbed } from './embed.js';
import { registerEval } from './eval.js';
import { EXIT, UsageError, usageHint } from './exit.js';
import { registerIndex } from './index-command.js';
import { registerSearch } from './search-command.js';
import { registerServe } from './serve.js';
import { registerTrain } from './train.js';
import { registerInfo } from './info.js';

// Commander reports its own parse errors through outputError; remembering that keeps them to one line.
let reportedByCommander = false;
const program = new Command();
program
  .name('mir3d')
  .description('Content-based retrieval of 3D medical images (CT): which scans look like this one, and where.')
  .version(process.env.npm_package_version ?? '0.1.0')
  .exitOverride()
  .configureOutput({
    outputError: (text, write) => {
      reportedByCommander = true;
      write(`mir3d: ${text.replace(/^error: /, '').trim()}\n`);
    },
  });

registerInfo(program);
registerDemo(program);
registerEmbed(program);
registerIndex(program);
registerSearch(program);
registerServe(program);
registerEval(program);
registerTrain(program);

const command = process.argv.slice(2).find((arg) => program.commands.some((c) => c.name() === arg));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // One error model for every command: usage errors and bad input (a file, model, index, option, a full
  // disk) are one line with a hint or code, exit 2; anything else is a defect and keeps its stack.
  if (error instanceof CommanderError) {
    if (error.exitCode === 0) {
      process.exitCode = EXIT.ok; // --help, --version
    } else {
      // 'commander.help': no command given, the help was printed instead.
      if (error.code !== 'commander.help') {
        if (!reportedByCommander) process.stderr.write(`mir3d: ${error.message.replace(/^error: /, '')}\n`);
        process.stderr.write(`${usageHint(command)}\n`);
      }
      process.exitCode = EXIT.badInput;
    }
  } else if (isExpectedError(error)) {
    process.stderr.write(`mir3d: ${error.message.split('\n')[0]} [${error.code}]\n`);
    if (error instanceof UsageError) process.stderr.write(`${usageHint(command)}\n`);
    process.exitCode = EXIT.badInput;
  } else {
    process.stderr.write(
      `mir3d: unexpected error (a defect in mir3d, not in your input):\n${describeCauses(error)}\n` +
        `please report it with the command line you ran, this output and the version (mir3d --version: ${program.version() ?? '?'})\n`,
    );
    process.exitCode = EXIT.defect;
  }
}
