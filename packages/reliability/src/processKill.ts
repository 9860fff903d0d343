/**
 * The service SIGKILLed during a Redis outage, with Telegram and Claude failing so that chats are queued on disk, and
 * restarted on the same DATA_DIR once Redis is back: the deferred queues (Telegram, Claude retries) and the search
 * cache's journal are replayed; nothing acknowledged is lost.
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Effect } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import * as H from "./Harness.ts"
import { none, type Scenario } from "./Scenario.ts"

const files = (dir: string): number => {
  try {
    return readdirSync(dir, { recursive: true }).length
  } catch {
    return 0
  }
}

/**
 * The user ids of the dead letters in the queue directory (FallbackStore names a file `k` + the hex of its key;
 * a dead letter's key is `<queue>/d/<seq>`), read from the disk as an operator would.
 */
const deadLetters = (dir: string): Set<string> => {
  const users = new Set<string>()
  let names: ReadonlyArray<string> = []
  try {
    names = readdirSync(dir)
  } catch {
    return users
  }
  for (const name of names) {
    if (!name.startsWith("k") || !Buffer.from(name.slice(1), "hex").toString().includes("/d/")) continue
    try {
      const user = /"user_id":"([^"]+)"/.exec(readFileSync(`${dir}/${name}`, "utf8"))?.[1]
      if (user !== undefined) users.add(user)
    } catch {
      // gone in between: not a dead letter any more
    }
  }
  return users
}

export const scenario: Scenario = {
  name: "process-kill",
  title: "The service SIGKILLed during a Redis outage, restarted on the same DATA_DIR",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const dataDir = `${ctx.workDir}/data`
      const loadMs = ctx.quick ? 5_000 : 15_000
      const redis = yield* RedisServer.make({ persistence: true })
      const first = yield* H.startService({ dataDir, redisUrl: redis.url })
      yield* H.timeUntil(Effect.map(first.request("GET", "/health/ready"), (r) => r.status === 200), 15_000)

      yield* redis.kill
      yield* H.chaos(first, "telegram", { failure_rate: 1 })
      yield* H.chaos(first, "claude", { failure_rate: 0.5 })
      const load = yield* H.load({ rate: 30, chatShare: 0.5, tag: "pk", targets: () => [first] })
      yield* Effect.sleep(loadMs)
      const sent = yield* load.stop
      const filesOnDisk = files(dataDir)
      yield* ctx.log("process-kill: SIGKILL the service")
      yield* first.stop("SIGKILL")

      const chats = sent.filter((s) => s.kind === "chat" && s.status === 200)
      // Delivered before the kill went to the first process's (in-memory) Telegram; the rest must come after.
      const pending = chats.filter((s) => s.body?.delivery !== "Delivered").map((s) => s.id)
      const searches = H.searchWrites(sent)

      yield* redis.restart
      const restartedAt = yield* H.now
      const second = yield* H.startService({ dataDir, redisUrl: redis.url, port: first.port })
      const listening = yield* H.since(restartedAt)
      const chatsDone = yield* H.timeUntil(
        Effect.map(H.outbox(second), (o) => {
          const dead = deadLetters(`${dataDir}/queue`)
          return pending.every((id) => o.received.has(id) || dead.has(id))
        }),
        30_000,
        "200 millis"
      )
      const journalDone = yield* H.timeUntil(
        Effect.map(H.redisKeys(redis.port), (keys) => {
          const cached = H.cachedQueries(keys)
          return searches.every((q) => cached.has(q))
        }),
        30_000,
        "200 millis"
      )
      const { queued, received } = yield* H.outbox(second)
      const cached = H.cachedQueries(yield* H.redisKeys(redis.port))
      const dead = deadLetters(`${dataDir}/queue`)
      // Given up on (dead-lettered) is kept and accounted for, but never delivered: a missed target, not a loss.
      const deadLettered = pending.filter((id) => !received.has(id) && dead.has(id))
      const lostChats = pending.filter((id) => !received.has(id) && !dead.has(id))
      const lostSearches = searches.filter((q) => !cached.has(q))
      const duplicated = pending.filter((id) => (received.get(id) ?? 0) > 1)
      const tally = H.tally(sent)
      const failed: Array<string> = []
      if (tally.status500 > 0) failed.push(`process-kill: ${tally.status500} responses were 500`)
      if (lostChats.length > 0) {
        failed.push(
          `process-kill: ${lostChats.length} queued chats lost after the restart (e.g. ${
            lostChats.slice(0, 3).join(", ")
          })`
        )
      }
      if (lostSearches.length > 0) {
        failed.push(
          `process-kill: ${lostSearches.length} journaled search-cache writes missing from Redis ` +
            `(e.g. ${lostSearches.slice(0, 3).join(", ")})`
        )
      }
      return {
        rows: [
          { metric: "requests before the kill (Redis down)", value: String(tally.requests) },
          none("failed (non-2xx)", tally.failed),
          { metric: "served degraded", value: String(tally.degraded) },
          { metric: "chats queued on disk (acknowledged, not yet delivered)", value: String(pending.length) },
          { metric: "search-cache writes journaled", value: String(searches.length) },
          { metric: "files in DATA_DIR at the kill", value: String(filesOnDisk) },
          none("queued chats lost after the restart", lostChats.length, pending.length),
          none("journaled writes missing from Redis", lostSearches.length, searches.length),
          none("queued chats dead-lettered (kept on disk, never delivered)", deadLettered.length, pending.length),
          none("chats delivered twice", duplicated.length),
          { metric: "restart to listening", value: H.ms(listening) },
          {
            metric: "restart to every queued chat delivered",
            value: H.ms(chatsDone === undefined ? undefined : chatsDone + listening)
          },
          {
            metric: "restart to journal replayed",
            value: H.ms(journalDone === undefined ? undefined : journalDone + listening)
          },
          { metric: "still queued at the end", value: String(queued) }
        ],
        failed,
        figures: {
          pendingChats: pending.length,
          journaled: searches.length,
          lostChats: lostChats.length,
          deadLettered: deadLettered.length,
          lostSearches: lostSearches.length,
          duplicates: duplicated.length,
          failed: tally.failed
        },
        notes: [
          `Redis SIGKILLed, Telegram failing (rate 1) and Claude half failing (rate 0.5), ${
            loadMs / 1000
          } s of load at ` +
          "30 requests/s (half chats); then the service SIGKILLed, Redis restarted with its append-only file, and the " +
          "service restarted on the same port and DATA_DIR with healthy upstreams (chaos is per process). A chat " +
          "is lost when its reply never reaches Telegram and it is not among the dead letters in DATA_DIR/queue; " +
          "a dead letter (the Claude retry queue gives up after 5 attempts) is kept, and reported as a missed target.",
          ...(deadLettered.length > 0 ? [`Dead-lettered: ${deadLettered.join(", ")}.`] : [])
        ]
      }
    })
}
