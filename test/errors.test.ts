import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../src/cli/exit.js';
import { ComputeError } from '../src/compute/errors.js';
import { EncoderError } from '../src/encode/errors.js';
import { errorLine, isExpectedError, isPersistentError, Mir3dError } from '../src/errors.js';
import { VolumeReadError } from '../src/io/errors.js';
import { SearchError } from '../src/search/errors.js';
import { ServerConfigError } from '../src/server/app.js';
import { ApiError, toApiError } from '../src/server/errors.js';
import { StoreError } from '../src/store/errors.js';

/** One error base: callers check flags, never lists of classes. */
describe('the error base', () => {
  const samples: [string, Mir3dError, boolean, boolean][] = [
    ['bad file', new VolumeReadError('BAD_HEADER', 'x.nii', 'broken'), true, false],
    ['bad batch', new EncoderError('BAD_BATCH', 'model', 'wrong size'), true, false],
    ['broken model', new EncoderError('CORRUPT_MODEL', 'model', 'garbage'), true, true],
    ['encoder used after close', new EncoderError('CLOSED', 'model', 'closed'), false, true],
    ['duplicate content', new StoreError('DUPLICATE_CONTENT', 'db', 'twice'), true, false],
    ['wrong index', new StoreError('ENCODER_MISMATCH', 'db', 'other encoder'), true, true],
    ['bad option', new SearchError('BAD_OPTION', 'k must be positive'), true, false],
    ['kernel bug', new SearchError('KERNEL_OUTPUT', 'wrong shape'), false, false],
    ['no GPU provider', new ComputeError('PROVIDER_UNAVAILABLE', 'no CUDA'), true, true],
    ['kernel input bug', new ComputeError('BAD_INPUT', 'rows'), false, false],
    ['server setup', new ServerConfigError('BAD_PORT', 'port'), true, true],
    ['API refusal', new ApiError(404, 'NOT_FOUND', 'no such volume'), true, false],
    ['API defect', new ApiError(500, 'INTERNAL', 'internal error'), false, false],
    ['usage', new UsageError('give one of --a, --b'), true, false],
  ];
  for (const [what, error, expected, persistent] of samples) {
    test(`${what}: ${error.name} [${error.code}] derives from the base, expected=${expected}, persistent=${persistent}`, () => {
      assert.ok(error instanceof Mir3dError);
      assert.ok(error instanceof Error);
      assert.equal(typeof error.code, 'string');
      assert.equal(error.expected, expected);
      assert.equal(error.persistent, persistent);
      assert.equal(isExpectedError(error), expected);
      assert.equal(isPersistentError(error), persistent);
    });
  }

  test('errorLine: one line with the code for expected errors, the class for anything else', () => {
    assert.equal(errorLine(new VolumeReadError('BAD_MAGIC', 'a.nii', 'not NIfTI')), 'a.nii: not NIfTI [BAD_MAGIC]');
    assert.equal(errorLine(new RangeError('Start offset -1000 is outside the bounds of the buffer\n    at x')), 'unexpected RangeError: Start offset -1000 is outside the bounds of the buffer');
  });

  test('the server answers 500 for any unexpected error and keeps the cause to log', () => {
    const bug = new TypeError('undefined is not a function');
    const answered = toApiError(bug);
    assert.equal(answered.statusCode, 500);
    assert.equal(answered.cause, bug);
    assert.equal(toApiError(new SearchError('KERNEL_OUTPUT', 'shape')).statusCode, 500);
    assert.equal(toApiError(new ComputeError('PROVIDER_UNAVAILABLE', 'no CUDA')).statusCode, 503);
    assert.equal(toApiError(new VolumeReadError('BAD_HEADER', 'up', 'bad'), { volumeFromClient: true }).statusCode, 422);
  });
});
