import { InvalidArgumentError } from 'commander';

/** Parsers for command-line option values, shared by every command so they accept and refuse alike. */

export const positiveNumber = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${label} must be a positive number`);
  return n;
};

export const positiveInteger = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${label} must be a positive integer`);
  return n;
};

export const nonNegativeInteger = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${label} must be a non-negative integer`);
  return n;
};

export const integer = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${label} must be an integer`);
  return n;
};

/** For repeatable options: each occurrence appends. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `key=value`; numbers stay numbers so label filters and metrics compare them as such. */
export function parseLabel(text: string): [string, string | number] {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`label "${text}" must look like key=value`);
  const key = text.slice(0, at).trim();
  const raw = text.slice(at + 1).trim();
  const number = Number(raw);
  return [key, raw !== '' && Number.isFinite(number) ? number : raw];
}
