/**
 * Errors in what the caller asked for (a bad option value, an output inside the dataset), as opposed to
 * failures while doing it. The command line reports them with its usage exit status (2); the pipeline
 * throws them too, so the class lives here, below both.
 */
export class UsageError extends Error {
  override name = 'UsageError';
}
