/**
 * Stable query/database assignment for datasets that ship no split: a case is a query when the 32-bit
 * FNV-1a hash of its id, as a fraction of 2³², is below the test fraction. Same answer on every machine
 * and run, and adding a case never moves another one.
 */
export function hashFraction(text: string): number {
  let h = 0x811c9dc5;
  for (let n = 0; n < text.length; n++) {
    h ^= text.charCodeAt(n);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 4294967296;
}

export function isHashQuery(caseId: string, testFraction: number): boolean {
  return hashFraction(caseId) < testFraction;
}
