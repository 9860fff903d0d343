import { AdminToken } from "@effect-resilience/http"
import { assert, describe, it } from "@effect/vitest"
import { Redacted } from "effect"

describe("review g: AdminToken", () => {
  // ResilienceHttp treats an empty configured token as "not configured" ("an empty token would make 'no token' a
  // credential"); the public check, meant for admin routes of your own, does not: an empty header then authorizes.
  it("an empty token given never matches, even when the configured one is empty (unset)", () => {
    const unset = Redacted.make("")
    assert.isFalse(AdminToken.authorizes(undefined, unset))
    assert.isFalse(AdminToken.equals("", unset))
  })
})
