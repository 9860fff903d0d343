/**
 * V8's `Error.stackTraceLimit`, which the ECMAScript lib typings do not declare.
 *
 * @internal
 */
const ErrorConstructor = Error as unknown as { stackTraceLimit: number }

/**
 * Runs `f` with stack capture off, for errors that are built on a hot path and whose stack says nothing useful.
 *
 * @internal
 */
export const stackless = <A>(f: () => A): A => {
  const limit = ErrorConstructor.stackTraceLimit
  ErrorConstructor.stackTraceLimit = 0
  try {
    return f()
  } finally {
    ErrorConstructor.stackTraceLimit = limit
  }
}
