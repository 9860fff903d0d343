/**
 * The admin token check: the Authorization header against the configured token, in constant time.
 *
 * @internal
 */
import * as Redacted from "effect/Redacted"
import { createHash, timingSafeEqual } from "node:crypto"

// Equal-length digests: timingSafeEqual needs equal lengths, and comparing digests hides the token's length.
const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest()

/** @internal */
export const bearer = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const match = /^Bearer +(\S+) *$/i.exec(header)
  return match === null ? undefined : match[1]
}

/** @internal */
export const matches = (header: string | undefined, expected: Redacted.Redacted<string>): boolean => {
  const given = bearer(header)
  // Always compare, so a missing header costs what a wrong one does.
  const same = timingSafeEqual(digest(given ?? ""), digest(Redacted.value(expected)))
  return given !== undefined && same
}
