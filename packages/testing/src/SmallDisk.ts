/**
 * A small disk for tests of what a store does when it fills: a temporary directory with a tmpfs of its own mounted on
 * it (root only, as the machines of this workspace run tests), unmounted and removed with the scope, and `fill`, which
 * grows a file there until the disk is full, as another program would.
 *
 * @example
 * ```ts
 * import * as SmallDisk from "@effect-resilience/testing/SmallDisk"
 * import { Effect } from "effect"
 *
 * const full = Effect.gen(function*() {
 *   const directory = yield* SmallDisk.make("64k")
 *   yield* SmallDisk.fill(directory)
 *   return directory
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * A directory with a tmpfs of `size` (`mount`'s notation: `"64k"`) on it, for the scope.
 *
 * @since 0.1.0
 */
export const make = (size: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const directory = mkdtempSync(join(tmpdir(), "small-disk-"))
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", directory], { stdio: "pipe" })
      return directory
    }),
    (directory) =>
      Effect.sync(() => {
        try {
          execFileSync("umount", ["-l", directory], { stdio: "pipe" })
        } catch {
          // Already unmounted.
        }
        rmSync(directory, { recursive: true, force: true })
      })
  )

/**
 * Fills the disk of `directory` with a file of its own, as another program would, until the disk is full.
 *
 * @since 0.1.0
 */
export const fill = (directory: string): Effect.Effect<void> =>
  Effect.sync(() => {
    const fd = openSync(join(directory, "filler"), "w")
    try {
      const chunk = Buffer.alloc(512, 1)
      for (;;) writeSync(fd, chunk)
    } catch {
      // ENOSPC: full.
    } finally {
      closeSync(fd)
    }
  })
