import { InvalidArgumentError } from 'commander';

/** Options every command that talks to a PACS takes. */
export interface DicomWebCliOptions {
  credentials?: string;
  caFile?: string;
}

/** `--study-date 20200101-20201231` (either side may be left open), as QIDO-RS takes it. */
export function studyDateRange(value: string): string {
  if (!/^(\d{8})?-(\d{8})?$/.test(value) && !/^\d{8}$/.test(value)) {
    throw new InvalidArgumentError('--study-date takes YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD');
  }
  return value;
}
