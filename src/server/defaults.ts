/** Where `mir3d serve` listens unless told otherwise (a module of its own so the CLI can show these
 * without loading Fastify for every command). */
export const DEFAULT_PORT = 8765;
export const DEFAULT_HOST = '127.0.0.1';
