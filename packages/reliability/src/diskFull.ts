/**
 * Disk trouble (issue 17): the service's `DATA_DIR` on a small tmpfs that fills up under load, then frees. The
 * service must keep answering (no 500), say what went wrong in typed errors it logs, write again once there is room,
 * and keep intact everything it had stored before: the search answers in its cache and the chats queued in its
 * journal, read back through the service and, after it stopped, from the files.
 *
 * Mounting needs root (or CAP_SYS_ADMIN): without it the scenario fails, loudly, rather than skipping.
 */
import { FallbackStore } from "@effect-resilience/core"
import { NodeServices } from "@effect/platform-node"
import { Effect, Option, References } from "effect"
import { spawnSync } from "node:child_process"
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync
} from "node:fs"
import { join } from "node:path"
import * as H from "./Harness.ts"
import { none, type Result, type Scenario } from "./Scenario.ts"

const sizeMb = 4

const run = (command: string, args: ReadonlyArray<string>) => {
  const done = spawnSync(command, args, { encoding: "utf8" })
  return {
    ok: done.status === 0,
    output: `${done.stderr ?? ""}${done.stdout ?? ""}${done.error?.message ?? ""}`.trim()
  }
}

/**
 * Mounts a tmpfs of `sizeMb` MB on `dir` for the scope: an error message when it cannot. Unmounted when the scope
 * closes (after the service, started later in the same scope, is stopped); lazily if something still holds it.
 */
const mountTmpfs = (dir: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      mkdirSync(dir, { recursive: true })
      const mounted = run("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}m,mode=0700`, "tmpfs", dir])
      return mounted.ok ? undefined : `mount -t tmpfs on ${dir} failed: ${mounted.output || "no output"}`
    }),
    (error) =>
      error !== undefined ? Effect.void : Effect.gen(function*() {
        for (let attempt = 0; attempt < 20; attempt++) {
          if (run("umount", [dir]).ok) return
          yield* Effect.sleep("100 millis")
        }
        const lazy = run("umount", ["-l", dir])
        if (!lazy.ok) yield* Effect.logError(`disk-full: could not unmount ${dir}: ${lazy.output}`)
      })
  )

/** Writes `file` until the file system is full (ENOSPC), down to single bytes; the bytes written. */
const fill = (file: string): number => {
  const fd = openSync(file, "w")
  let written = 0
  try {
    for (const size of [1 << 18, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 0x5a)
      for (;;) {
        try {
          written += writeSync(fd, chunk)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOSPC") break
          throw error
        }
      }
    }
  } finally {
    closeSync(fd)
  }
  return written
}

const entryNames = (dir: string) => existsSync(dir) ? readdirSync(dir).filter((n) => /^[kh][0-9a-f]+$/.test(n)) : []
const tempNames = (dir: string) => existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith("tmp-")) : []

/** Opens the store on `directory` (the service stopped), reads `keys`: the values, and entries found corrupt. */
const readStore = (directory: string, keys: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const files = entryNames(directory).length
    const store = yield* FallbackStore.make({ directory })
    const size = yield* store.size
    const values = new Map<string, string>()
    for (const key of keys) {
      const value = yield* store.get(key)
      if (Option.isSome(value)) values.set(key, value.value)
    }
    return { files, size, corrupt: files - size, values }
  })).pipe(
    // A corrupt entry is counted from the files the store dropped; its warnings are not wanted on stderr here.
    Effect.provideService(References.MinimumLogLevel, "Error"),
    Effect.provide(NodeServices.layer)
  )

const chatCounts = (chats: ReadonlyArray<H.Sent>) =>
  `${chats.filter((s) => s.status === 200).length} answered 200, ${
    chats.filter((s) => s.status === 503).length
  } refused 503, of ${chats.length}`

const sameResults = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

// What the service logs when a write finds the disk full: FallbackStoreError's `DiskFull` description or reason.
const diskFullLine = /DiskFull|the disk is full \(ENOSPC\)/

export const scenario: Scenario = {
  name: "disk-full",
  title: "Disk trouble: DATA_DIR on a small tmpfs that fills up under load, then frees",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const dataDir = join(ctx.workDir, "data")
      const filler = join(dataDir, "filler")
      const fullMs = ctx.quick ? 10_000 : 30_000
      const afterMs = ctx.quick ? 4_000 : 10_000
      const rate = 20

      const mountError = yield* mountTmpfs(dataDir)
      if (mountError !== undefined) {
        return {
          rows: [{ metric: "tmpfs mounted", value: "no", target: "yes", ok: false }],
          failed: [`disk-full: cannot mount a tmpfs (root or CAP_SYS_ADMIN needed): ${mountError}`],
          figures: { mounted: false }
        } satisfies Result
      }

      const agent = yield* H.startService({ dataDir })
      const ready = yield* H.timeUntil(
        Effect.map(agent.request("GET", "/health/ready"), (r) => r.status === 200),
        15_000
      )
      if (ready === undefined) return yield* new H.ScenarioError({ message: "the service never became ready" })

      // 1. Stored first: search answers (cached on disk) and chats queued in the journal while Telegram fails.
      yield* H.chaos(agent, "telegram", { failure_rate: 1 })
      const before = yield* H.load({ rate, chatShare: 0.4, tag: "before", targets: () => [agent] })
      yield* Effect.sleep("2 seconds")
      const sentBefore = yield* before.stop
      const storedSearches = sentBefore.filter((s) =>
        s.kind === "search" && s.status === 200 && s.body?.served_by === "exa_api"
      )
      const storedChats = sentBefore.filter((s) => s.kind === "chat" && s.status === 200)
      const filesBefore = entryNames(`${dataDir}/cache`).length + entryNames(`${dataDir}/queue`).length

      // 2. The disk fills up, under load: first with Telegram failing (a chat's reply must be queued on disk), then
      // with Telegram back (the queue drains, replies go out directly, nothing to write).
      yield* ctx.log("disk-full: filling the tmpfs")
      const fillerBytes = fill(filler)
      const full = yield* H.load({ rate, chatShare: 0.4, tag: "full", targets: () => [agent] })
      yield* Effect.sleep(fullMs / 2)
      yield* H.chaos(agent, "telegram", { failure_rate: 0 })
      const healedAt = yield* H.now
      yield* Effect.sleep(fullMs / 2)
      const sentFull = yield* full.stop
      const outputFull = agent.output()

      // 3. Room again, Telegram failing again: replies are queued on disk again; then Telegram heals.
      yield* ctx.log("disk-full: freeing the tmpfs")
      rmSync(filler)
      yield* H.chaos(agent, "telegram", { failure_rate: 1 })
      const after = yield* H.load({ rate, chatShare: 0.4, tag: "after", targets: () => [agent] })
      yield* Effect.sleep(afterMs)
      const sentAfter = yield* after.stop
      yield* H.chaos(agent, "telegram", { failure_rate: 0 })
      const all = [...sentBefore, ...sentFull, ...sentAfter]
      const chatsFull = (telegram: "failing" | "healthy") =>
        sentFull.filter((s) => s.kind === "chat" && (telegram === "failing" ? s.at < healedAt : s.at >= healedAt))
      const queuedAfter = sentAfter.filter((s) =>
        s.kind === "chat" && s.status === 200 && s.body?.delivery === "Queued"
      )

      // Every chat acknowledged with a 200 and not delivered at once was queued: it must reach Telegram.
      const queued = all.filter((s) => s.kind === "chat" && s.status === 200 && s.body?.delivery !== "Delivered")
      const delivered = yield* H.timeUntil(
        Effect.map(H.outbox(agent), (o) => queued.every((s) => o.received.has(s.id))),
        20_000,
        "200 millis"
      )
      const { received } = yield* H.outbox(agent)
      const undelivered = queued.filter((s) => !received.has(s.id))

      // Read back through the service: with both search providers failing, the cache answers.
      yield* H.chaos(agent, "exa", { failure_rate: 1 })
      yield* H.chaos(agent, "tavily", { failure_rate: 1 })
      const writtenAfter = sentAfter.filter((s) =>
        s.kind === "search" && s.status === 200 && s.body?.served_by === "exa_api"
      )
      const readBack = (sent: ReadonlyArray<H.Sent>) =>
        Effect.forEach(sent, (s) =>
          Effect.map(
            Effect.result(agent.request("GET", `/search?q=${encodeURIComponent(s.id)}`)),
            (r) =>
              r._tag === "Success" && r.success.status === 200 && r.success.body?.served_by === "cache" &&
              sameResults(r.success.body?.results, s.body?.results)
          ), { concurrency: 4 })
      const storedServed = yield* readBack(storedSearches)
      const afterServed = yield* readBack(writtenAfter)
      const storedMissing = storedSearches.filter((_, i) => !storedServed[i]).map((s) => s.id)
      const afterMissing = writtenAfter.filter((_, i) => !afterServed[i]).map((s) => s.id)

      // Then from the files, the service stopped (its lock released): every stored answer byte for byte.
      const stoppedWith = yield* agent.stopService("SIGTERM")
      const output = agent.output()
      const cacheDir = `${dataDir}/cache`
      const queueDir = `${dataDir}/queue`
      const tempLeft = tempNames(cacheDir).length + tempNames(queueDir).length
      const cache = yield* readStore(cacheDir, storedSearches.map((s) => `search:${s.id}`))
      const journal = yield* readStore(queueDir, [])
      const damaged = storedSearches.filter((s) => {
        const value = cache.values.get(`search:${s.id}`)
        return value === undefined || !sameResults(JSON.parse(value), s.body?.results)
      }).map((s) => s.id)

      const tallyFull = H.tally(sentFull)
      const tallyAll = H.tally(all)
      const statuses = new Map<number, number>()
      for (const s of sentFull) statuses.set(s.status, (statuses.get(s.status) ?? 0) + 1)
      const refusedTyped = sentFull.filter((s) => s.status === 503 && typeof s.body?.error === "string")
      const logged = diskFullLine.test(outputFull)
      const logLine = outputFull.split("\n").find((line) => diskFullLine.test(line))
      const refusal = refusedTyped[0]?.body
      const answeredWhileFull = sentFull.filter((s) => s.status !== 0).length

      const failed: Array<string> = []
      if (tallyAll.status500 > 0) failed.push(`disk-full: ${tallyAll.status500} responses were 500`)
      if (storedSearches.length === 0 || storedChats.length === 0) {
        failed.push(
          `disk-full: nothing was stored before the disk filled (${storedSearches.length} searches, ` +
            `${storedChats.length} chats)`
        )
      }
      if (tallyFull.noAnswer > 0) {
        failed.push(`disk-full: ${tallyFull.noAnswer} requests got no answer while the disk was full`)
      }
      if (!logged) failed.push("disk-full: the service never logged a typed DiskFull error while the disk was full")
      if (storedMissing.length > 0) {
        failed.push(
          `disk-full: ${storedMissing.length} answers stored before the disk filled were not served from the cache ` +
            `afterwards (e.g. ${storedMissing.slice(0, 3).join(", ")})`
        )
      }
      if (damaged.length > 0) {
        failed.push(
          `disk-full: ${damaged.length} cache entries stored before the disk filled are missing or damaged on disk ` +
            `(e.g. ${damaged.slice(0, 3).join(", ")})`
        )
      }
      if (cache.corrupt + journal.corrupt > 0) {
        failed.push(`disk-full: ${cache.corrupt + journal.corrupt} corrupt entries found on disk after the run`)
      }
      if (undelivered.length > 0) {
        failed.push(
          `disk-full: ${undelivered.length} acknowledged chats never reached Telegram ` +
            `(e.g. ${undelivered.slice(0, 3).map((s) => s.id).join(", ")})`
        )
      }
      if (queuedAfter.length === 0) {
        failed.push("disk-full: no chat was queued on disk once the disk had room (the journal did not write again)")
      }
      if (writtenAfter.length === 0 || afterMissing.length > 0) {
        failed.push(
          `disk-full: writes did not succeed again once the disk had room (${
            writtenAfter.length - afterMissing.length
          } of ${writtenAfter.length} answers cached)`
        )
      }
      if (failed.length > 0) {
        // The tmpfs goes with the scope: keep a copy of the data and the service's output for whoever looks.
        yield* Effect.sync(() => {
          cpSync(dataDir, join(ctx.workDir, "data-kept"), { recursive: true })
          writeFileSync(join(ctx.workDir, "service-output.txt"), output)
        })
      }

      const statusText = [...statuses.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(", ")
      return {
        rows: [
          { metric: "tmpfs", value: `${sizeMb} MB; filler ${(fillerBytes / 2 ** 20).toFixed(2)} MB to ENOSPC` },
          {
            metric: "stored before: searches cached, chats queued",
            value: `${storedSearches.length}, ${storedChats.length} (${filesBefore} entry files)`
          },
          { metric: "requests while full", value: `${sentFull.length} in ${fullMs / 1000} s at ${rate}/s` },
          {
            metric: "answered while full",
            value: `${answeredWhileFull} of ${sentFull.length}`,
            target: "all",
            ok: answeredWhileFull === sentFull.length
          },
          { metric: "non-2xx while full (reported)", value: `${tallyFull.failed} (${statusText})` },
          { metric: "of which typed refusals (503 with an error tag)", value: String(refusedTyped.length) },
          { metric: "chats while full, Telegram failing (reply to queue)", value: chatCounts(chatsFull("failing")) },
          { metric: "chats while full, Telegram healthy", value: chatCounts(chatsFull("healthy")) },
          {
            metric: "a refusal",
            value: refusal === undefined
              ? "none"
              : `${refusal.error} (${refusal.reason}): ${String(refusal.message).slice(0, 160)}`
          },
          none("500s (whole run)", tallyAll.status500),
          {
            metric: "typed DiskFull error in the service's log",
            value: logLine === undefined ? "no" : `yes: ${logLine.trim().slice(0, 200)}`,
            target: "yes",
            ok: logged
          },
          {
            metric: "stored answers served from the cache afterwards",
            value: `${storedSearches.length - storedMissing.length} of ${storedSearches.length}`,
            target: "all",
            ok: storedMissing.length === 0
          },
          {
            metric: "stored answers intact on disk (read by a fresh store)",
            value: `${storedSearches.length - damaged.length} of ${storedSearches.length}`,
            target: "all",
            ok: damaged.length === 0
          },
          {
            metric: "corrupt entries on disk; temporary files left",
            value: `${cache.corrupt + journal.corrupt}; ${tempLeft}`,
            target: "0; 0",
            ok: cache.corrupt + journal.corrupt === 0 && tempLeft === 0
          },
          {
            metric: "acknowledged chats queued, delivered once Telegram and the disk were back",
            value: `${queued.length - undelivered.length} of ${queued.length}`,
            target: "all",
            ok: undelivered.length === 0
          },
          {
            metric: "time to deliver them once Telegram healed",
            value: H.ms(delivered)
          },
          {
            metric: "chats queued on disk after the disk freed",
            value: String(queuedAfter.length),
            target: "> 0",
            ok: queuedAfter.length > 0
          },
          {
            metric: "answers written after the disk freed, served from the cache",
            value: `${writtenAfter.length - afterMissing.length} of ${writtenAfter.length}`,
            target: "all",
            ok: writtenAfter.length > 0 && afterMissing.length === 0
          },
          { metric: "service stopped with", value: String(stoppedWith) }
        ],
        failed,
        figures: {
          mounted: true,
          storedSearches: storedSearches.length,
          storedChats: storedChats.length,
          requestsFull: sentFull.length,
          failedFull: tallyFull.failed,
          noAnswerFull: tallyFull.noAnswer,
          status500: tallyAll.status500,
          typedRefusals: refusedTyped.length,
          loggedDiskFull: logged,
          storedMissing: storedMissing.length,
          damagedOnDisk: damaged.length,
          corruptOnDisk: cache.corrupt + journal.corrupt,
          tempFilesLeft: tempLeft,
          queuedChats: queued.length,
          undelivered: undelivered.length,
          writtenAfter: writtenAfter.length,
          afterMissing: afterMissing.length,
          queuedAfter: queuedAfter.length,
          deliveredMs: delivered ?? Number.NaN
        },
        notes: [
          `DATA_DIR on a ${sizeMb} MB tmpfs, no Redis (the search cache and the journal are FallbackStores on it). ` +
          `2 s of load at ${rate} requests/s (40% chats) with Telegram failing, so chats are queued in the journal; ` +
          `then a filler file takes every byte left and ${fullMs / 1000} s of the same load run on a full disk ` +
          "(Telegram failing the first half, healthy the second); then the filler goes and " +
          `${afterMs / 1000} s more load run with Telegram failing, then it heals. Read back through the ` +
          "service with both search providers failing (the cache answers), and from the files by a fresh store " +
          "once the service stopped."
        ]
      }
    })
}
