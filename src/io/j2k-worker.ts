/**
 * Worker thread body for j2k-codec.ts: decodes the JPEG 2000 frames it is sent, one at a time, and
 * hands the samples back without a copy.
 */
import { parentPort } from 'node:worker_threads';
import { decodeJ2kHere, type J2kRequest, type J2kResponse } from './j2k-codec.js';

if (!parentPort) throw new Error('j2k-worker must run as a worker thread');
const port = parentPort;

port.on('message', (message: J2kRequest) => {
  decodeJ2kHere(message.encoded).then(
    (frame) => port.postMessage({ id: message.id, frame } satisfies J2kResponse, [frame.bytes.buffer as ArrayBuffer]),
    (error: unknown) => port.postMessage({ id: message.id, error: describe(error) } satisfies J2kResponse),
  );
});

/** Emscripten throws numbers or plain objects as often as Errors. */
function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'exception' in error) return String(error.exception);
  return String(error);
}
