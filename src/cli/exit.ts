import { Mir3dError } from '../errors.js';

/**
 * Exit statuses of every command. `partial` is for batch commands (index) that ran but could not take
 * every input named; `defect` (sysexits' EX_SOFTWARE) says the failure is mir3d's, not the input's.
 */
export const EXIT = { ok: 0, partial: 1, badInput: 2, defect: 70 } as const;

/** A usage mistake found after parsing (options that contradict each other, a missing companion). */
export class UsageError extends Mir3dError<'USAGE'> {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super('USAGE', message);
  }
}

export function usageHint(command: string | undefined): string {
  return command ? `hint: mir3d ${command} --help lists its arguments and options` : 'hint: mir3d --help lists the commands';
}
