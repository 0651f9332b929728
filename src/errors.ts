/**
 * The one base of every error mir3d raises on purpose. It sits below every stage (it imports nothing), so
 * io, encode, compute, store, search, ingest, eval, server and cli all derive from it.
 *
 * - `code` is stable: tests, the HTTP API and scripts match on it, never on a message's wording.
 * - `expected` says whether the error describes something the user can fix (a bad file, option, model,
 *   index, a full disk): the CLI prints it as one line and exits 2, the server answers 4xx/503. When false
 *   it is a defect in mir3d: the CLI prints the stack and asks for a report, the server answers 500 and
 *   logs the cause.
 * - `persistent` says the problem lies with the setup (the model, the index, the disk), not with the one
 *   input in hand: a batch run stops instead of failing every later input the same way. Every other
 *   error inside one input (expected or not) fails that input and the run goes on.
 *
 * Callers check these flags, never a list of classes.
 */
export interface Mir3dErrorOptions {
  /** Default true: most errors mir3d raises describe bad input. */
  expected?: boolean;
  /** Default false. */
  persistent?: boolean;
  cause?: unknown;
}

export class Mir3dError<Code extends string = string> extends Error {
  override readonly name: string = 'Mir3dError';
  readonly expected: boolean;
  readonly persistent: boolean;
  constructor(
    readonly code: Code,
    message: string,
    options: Mir3dErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.expected = options.expected ?? true;
    this.persistent = options.persistent ?? false;
  }
}

export function isMir3dError(value: unknown): value is Mir3dError {
  return value instanceof Mir3dError;
}

/** A problem the user can fix, to be shown as one line (never a stack). */
export function isExpectedError(value: unknown): value is Mir3dError {
  return value instanceof Mir3dError && value.expected;
}

/** A problem with the setup that every later input of a batch would hit too. */
export function isPersistentError(value: unknown): value is Mir3dError {
  return value instanceof Mir3dError && value.persistent;
}

/** The first line of any thrown value's message, for one-line reports of unexpected errors. */
export function firstLine(value: unknown): string {
  const text = value instanceof Error ? `${value.name === 'Error' ? '' : `${value.name}: `}${value.message}` : String(value);
  return text.split('\n')[0];
}

/** `message [CODE]` for an expected error, `unexpected ErrorName: message` for anything else. */
export function errorLine(value: unknown): string {
  if (value instanceof Mir3dError && value.expected) return `${value.message.split('\n')[0]} [${value.code}]`;
  return `unexpected ${firstLine(value)}`;
}

/** The chain of causes as text (stacks included), for logs of unexpected errors. */
export function describeCauses(value: unknown): string {
  const parts: string[] = [];
  let current: unknown = value;
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    parts.push(current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\ncaused by: ');
}
