/**
 * Describes a client failure for an error message: `RedisError` wraps node-redis' error in `cause`, and node-redis
 * leaves `name` at `"Error"` on some of its classes (`ClientOfflineError`), so the class name stands in for it.
 *
 * @internal
 */
export const describeCause = (error: unknown): string => {
  const cause: unknown = typeof error === "object" && error !== null && "cause" in error ? error.cause : error
  if (typeof cause === "object" && cause !== null && "message" in cause && typeof cause.message === "string") {
    const name = "name" in cause && typeof cause.name === "string" && cause.name !== "Error"
      ? cause.name
      : cause.constructor.name
    return `${name}: ${cause.message}`
  }
  return String(cause)
}
