import { writeFileSync } from 'node:fs';

/**
 * Preloaded into a child `mir3d` process (node --import) by tests that bound memory: at exit it writes
 * the process's peak resident set size in bytes to $MIR3D_TEST_RSS_FILE.
 */
const target = process.env.MIR3D_TEST_RSS_FILE;
if (target) process.on('exit', () => writeFileSync(target, String(process.resourceUsage().maxRSS * 1024)));
