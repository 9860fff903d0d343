/**
 * The admin token check `ResilienceHttp` applies to its admin routes, for admin routes of your own: the token of an
 * `Authorization: Bearer` header (the scheme in any case, RFC 9110), compared with the configured one in constant
 * time. Both sides are hashed first, so the comparison takes as long whatever the given token's length, and a
 * missing token is compared too, so that its absence does not show in the time taken either.
 *
 * **Example** (A chaos control behind the admin token)
 *
 * ```ts
 * import { AdminToken } from "@effect-resilience/http"
 * import { Effect, Redacted } from "effect"
 * import { HttpServerRequest, HttpServerResponse } from "effect/http"
 *
 * const token = Redacted.make("s3cret-admin-token")
 *
 * const chaos = Effect.gen(function*() {
 *   const request = yield* HttpServerRequest.HttpServerRequest
 *   if (!AdminToken.authorizes(request.headers["authorization"], token)) {
 *     return HttpServerResponse.empty({ status: 401, headers: { "www-authenticate": "Bearer" } })
 *   }
 *   return HttpServerResponse.empty()
 * })
 * ```
 *
 * @since 0.2.0
 */
import * as Redacted from "effect/Redacted"
import { createHash, timingSafeEqual } from "node:crypto"

// Equal-length digests: timingSafeEqual needs equal lengths, and comparing digests hides the token's length.
const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest()

/**
 * The token of an `Authorization` header value, `Bearer <token>` with the scheme in any case; `undefined` for any
 * other header, or none.
 *
 * @example
 * ```ts
 * import { AdminToken } from "@effect-resilience/http"
 *
 * AdminToken.bearer("bearer s3cret") // "s3cret"
 * AdminToken.bearer("Basic czNjcmV0") // undefined
 * ```
 *
 * @since 0.2.0
 * @category parsing
 */
export const bearer = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const match = /^Bearer +(\S+) *$/i.exec(header)
  return match === null ? undefined : match[1]
}

/**
 * Whether `given` is the token `expected`, compared in constant time; `undefined` (no token given) never is, and
 * takes as long. An empty `expected` (a token left unset) matches nothing: an empty token is no token.
 *
 * @example
 * ```ts
 * import { AdminToken } from "@effect-resilience/http"
 * import { Redacted } from "effect"
 *
 * AdminToken.equals("s3cret", Redacted.make("s3cret")) // true
 * ```
 *
 * @since 0.2.0
 * @category checks
 */
export const equals = (given: string | undefined, expected: Redacted.Redacted<string>): boolean => {
  // Always compared, so a missing token costs what a wrong one does.
  const token = Redacted.value(expected)
  const same = timingSafeEqual(digest(given ?? ""), digest(token))
  return given !== undefined && token !== "" && same
}

/**
 * Whether an `Authorization` header value carries the token `expected` as a Bearer token (`bearer`, then `equals`).
 *
 * @example
 * ```ts
 * import { AdminToken } from "@effect-resilience/http"
 * import { Redacted } from "effect"
 *
 * AdminToken.authorizes("Bearer s3cret", Redacted.make("s3cret")) // true
 * ```
 *
 * @since 0.2.0
 * @category checks
 */
export const authorizes = (header: string | undefined, expected: Redacted.Redacted<string>): boolean =>
  equals(bearer(header), expected)
