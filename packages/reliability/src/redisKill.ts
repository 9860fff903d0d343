/**
 * Redis SIGKILLed under load, restarted empty; then SIGKILLed again and restarted with its data (append-only file).
 * Checked from outside: every response, Redis's keys (each search answered by an upstream was written to the shared
 * cache), the Telegram outbox (each acknowledged chat's reply arrives), and how long the fleet takes to be back.
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Effect } from "effect"
import * as H from "./Harness.ts"
import { none, type Row, type Scenario } from "./Scenario.ts"

/** Load around one Redis kill: `outageMs` down, then restarted with its data, or `empty` (its directory emptied). */
const phase = (
  label: string,
  redis: RedisServer.RedisServer,
  agent: Parameters<typeof H.breakerState>[0],
  options: { readonly rate: number; readonly outageMs: number; readonly settleMs: number; readonly empty: boolean }
) =>
  Effect.gen(function*() {
    const load = yield* H.load({ rate: options.rate, tag: `rk-${label}`, targets: () => [agent] })
    yield* Effect.sleep(options.settleMs)
    yield* redis.kill
    yield* Effect.sleep(options.outageMs)
    yield* (options.empty ? redis.restartEmpty : redis.restart)
    // What was acknowledged up to the restart must all be in Redis once the journal is replayed.
    const acknowledged = H.searchWrites(load.sent)
    // A fresh query each attempt (the service skips rewriting an unchanged answer for a minute).
    let probes = 0
    const [writesBack, replayed] = yield* Effect.all([
      H.timeUntil(
        Effect.suspend(() => {
          const probe = `rk-${label}-probe-${probes++}`
          return Effect.flatMap(
            agent.request("GET", `/search?q=${probe}`),
            () => Effect.map(H.redisKeys(redis.port), (keys) => H.cachedQueries(keys).has(probe))
          )
        }),
        20_000,
        "100 millis"
      ),
      H.timeUntil(
        Effect.map(H.redisKeys(redis.port), (keys) => {
          const cached = H.cachedQueries(keys)
          return acknowledged.every((q) => cached.has(q))
        }),
        20_000,
        "100 millis"
      )
    ], { concurrency: 2 })
    yield* Effect.sleep(options.settleMs)
    const sent = yield* load.stop
    // Everything acknowledged, also after the restart: give the last writes the time to land.
    const { expected, missingSearch, chats, missingChat, duplicated } = yield* H.account(sent, redis.port, agent)
    return {
      tally: H.tally(sent),
      searchWrites: expected.length,
      chatWrites: chats.length,
      missingSearch,
      missingChat,
      duplicated,
      sinceRestart: { writesBack, replayed }
    }
  })

export const scenario: Scenario = {
  name: "redis-kill",
  title: "Redis SIGKILLed under load, restarted empty, then with its data",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const rate = ctx.quick ? 40 : 80
      const outageMs = ctx.quick ? 4_000 : 10_000
      const settleMs = ctx.quick ? 2_000 : 5_000
      const redis = yield* RedisServer.make({ persistence: true })
      const agent = yield* H.startService({ dataDir: `${ctx.workDir}/data`, redisUrl: redis.url })
      yield* H.timeUntil(Effect.map(agent.request("GET", "/health/ready"), (r) => r.status === 200), 15_000)

      // Empty: restarted on an emptied directory (its append-only file gone, so every key and the marker too), then
      // the same kill and a restart with the append-only file kept.
      yield* ctx.log("redis-kill: restart empty")
      const empty = yield* phase("empty", redis, agent, { rate, outageMs, settleMs, empty: true })
      yield* ctx.log("redis-kill: restart with data")
      const kept = yield* phase("data", redis, agent, { rate, outageMs, settleMs, empty: false })

      const rows: Array<Row> = []
      const failed: Array<string> = []
      for (const [name, p] of [["empty", empty], ["with data", kept]] as const) {
        rows.push(
          { metric: `${name}: requests`, value: String(p.tally.requests) },
          none(`${name}: failed (non-2xx)`, p.tally.failed),
          { metric: `${name}: served degraded`, value: String(p.tally.degraded) },
          none(`${name}: acknowledged writes lost (search cache)`, p.missingSearch.length, p.searchWrites),
          none(`${name}: acknowledged chats not delivered`, p.missingChat.length, p.chatWrites),
          none(`${name}: chats delivered twice`, p.duplicated.length),
          { metric: `${name}: Redis back to a new write landing in Redis`, value: H.ms(p.sinceRestart.writesBack) },
          {
            metric: `${name}: Redis back to every earlier write in Redis (replay)`,
            value: H.ms(p.sinceRestart.replayed)
          },
          { metric: `${name}: latency p99`, value: H.ms(p.tally.p99) }
        )
        if (p.tally.status500 > 0) failed.push(`redis-kill (${name}): ${p.tally.status500} responses were 500`)
        if (p.missingSearch.length > 0) {
          failed.push(
            `redis-kill (${name}): ${p.missingSearch.length} acknowledged search-cache writes missing from Redis ` +
              `(e.g. ${p.missingSearch.slice(0, 3).join(", ")})`
          )
        }
        if (p.missingChat.length > 0) {
          failed.push(
            `redis-kill (${name}): ${p.missingChat.length} acknowledged chats never reached Telegram ` +
              `(e.g. ${p.missingChat.slice(0, 3).join(", ")})`
          )
        }
      }
      return {
        rows,
        failed,
        figures: {
          emptyFailed: empty.tally.failed,
          emptyLost: empty.missingSearch.length + empty.missingChat.length,
          emptyReplayedMs: empty.sinceRestart.replayed ?? -1,
          dataFailed: kept.tally.failed,
          dataLost: kept.missingSearch.length + kept.missingChat.length,
          dataReplayedMs: kept.sinceRestart.replayed ?? -1,
          duplicates: empty.duplicated.length + kept.duplicated.length
        },
        notes: [
          `${rate} requests/s (30% chat, 70% search, every one unique), Redis down ${outageMs / 1000} s each time.`,
          "Search-cache writes: every search answered by Exa or Tavily is written to the shared cache; each must be " +
          "in Redis after recovery (journal replay, or the re-seed after an empty Redis). Chats: every acknowledged " +
          "chat's reply must reach the (simulated) Telegram. \"Restarted empty\": the server restarted on the same port " +
          "with its directory emptied (no append-only file: no key, no marker); \"with its data\": restarted on its " +
          "append-only file."
        ]
      }
    })
}
