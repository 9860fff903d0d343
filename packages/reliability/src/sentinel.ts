/**
 * Redis behind Sentinel: the master SIGKILLed under load (a replica and three sentinels, quorum 2), the replica
 * promoted. Checked from outside: every response, the sentinels (when they name the new master), the new master's
 * keys (each search answered by an upstream was written to the shared cache, before the kill, during the failover or
 * after), the Telegram outbox, and the service's own account of the failover (its `RedisSentinel` log line).
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Effect } from "effect"
import * as H from "./Harness.ts"
import { none, type Row, type Scenario } from "./Scenario.ts"

const masterName = "mymaster"

// The sentinels' settings (`RedisServer.makeSentinel`): the master is down after 500 ms without an answer, which is
// most of the time to a failover; production settings (5-30 s) lengthen it by as much.
const downAfterMillis = 500

/** The port the sentinel on `port` names as the master. */
const namedMaster = (port: number) =>
  Effect.map(RedisServer.command(port, ["SENTINEL", "get-master-addr-by-name", masterName]), (reply) => {
    const lines = reply.split("\r\n")
    return Number(lines[4])
  })

export const scenario: Scenario = {
  name: "sentinel",
  title: "Redis Sentinel: the master SIGKILLed under load, the replica promoted",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const rate = ctx.quick ? 40 : 80
      const settleMs = ctx.quick ? 2_000 : 5_000
      const master = yield* RedisServer.make()
      const replica = yield* RedisServer.makeReplica(master)
      const sentinels = yield* RedisServer.makeSentinels(3, {
        masterName,
        masterPort: master.port,
        quorum: 2,
        downAfterMillis
      })
      const agent = yield* H.startService({
        dataDir: `${ctx.workDir}/data`,
        env: {
          REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","),
          REDIS_SENTINEL_MASTER: masterName
        }
      })
      yield* H.timeUntil(Effect.map(agent.request("GET", "/health/ready"), (r) => r.status === 200), 15_000)

      const load = yield* H.load({ rate, tag: "sn", targets: () => [agent] })
      yield* Effect.sleep(settleMs)
      const beforeKill = H.searchWrites(load.sent).length
      yield* ctx.log(`sentinel: SIGKILL the master (${beforeKill} search-cache writes acknowledged so far)`)
      const killedAt = yield* H.now
      yield* master.kill

      // A fresh query each attempt (the service skips rewriting an unchanged answer for a minute).
      let probes = 0
      const [promoted, writesBack] = yield* Effect.all([
        H.timeUntil(
          Effect.map(
            Effect.forEach(sentinels, (s) => namedMaster(s.port)),
            (named) => named.every((port) => port === replica.port)
          ),
          30_000,
          "20 millis"
        ),
        H.timeUntil(
          Effect.suspend(() => {
            const probe = `sn-probe-${probes++}`
            return Effect.flatMap(
              agent.request("GET", `/search?q=${probe}`),
              () => Effect.map(H.redisKeys(replica.port), (keys) => H.cachedQueries(keys).has(probe))
            )
          }),
          30_000,
          "100 millis"
        )
      ], { concurrency: 2 })
      // What was acknowledged up to now (before the kill and during the failover) must all be on the new master.
      const acknowledged = H.searchWrites(load.sent)
      const replayed = yield* H.timeUntil(
        Effect.map(H.redisKeys(replica.port), (keys) => {
          const cached = H.cachedQueries(keys)
          return acknowledged.every((q) => cached.has(q))
        }),
        20_000,
        "100 millis"
      ).pipe(Effect.flatMap((done) => done === undefined ? Effect.undefined : H.since(killedAt)))
      yield* Effect.sleep(settleMs)
      const sent = yield* load.stop

      // Everything acknowledged, after the failover too: give the last writes the time to land.
      const { expected, missingSearch, chats, missingChat, duplicated } = yield* H.account(sent, replica.port, agent)
      const tally = H.tally(sent)
      const newMaster = yield* Effect.forEach(sentinels, (s) => namedMaster(s.port))
      // The service's own measure: first failed command to first success on the new master (`RedisSentinel`).
      const clientRecovery = /RedisSentinel: master "mymaster" recovered on \S+ after (\d+) ms/.exec(agent.output())
      const followed = new RegExp(`moved from 127\\.0\\.0\\.1:${master.port} to 127\\.0\\.0\\.1:${replica.port}`)
        .test(agent.output())

      const rows: Array<Row> = [
        { metric: "requests", value: String(tally.requests) },
        none("failed (non-2xx)", tally.failed),
        { metric: "served degraded", value: String(tally.degraded) },
        none(
          "acknowledged writes lost (search cache, read from the new master)",
          missingSearch.length,
          expected.length
        ),
        none("acknowledged chats not delivered", missingChat.length, chats.length),
        none("chats delivered twice", duplicated.length),
        { metric: "kill to the sentinels naming the replica", value: H.ms(promoted) },
        {
          metric: "kill to a new write landing on the new master",
          value: H.ms(writesBack),
          target: "< 5 s",
          ok: writesBack !== undefined && writesBack < 5_000
        },
        { metric: "kill to every earlier write on the new master (replay)", value: H.ms(replayed) },
        {
          metric: "the service's RedisSentinel: first failure to first success",
          value: clientRecovery === null ? "n/a" : `${clientRecovery[1]} ms`
        },
        { metric: "latency p99", value: H.ms(tally.p99) }
      ]
      const failed: Array<string> = []
      if (tally.status500 > 0) failed.push(`sentinel: ${tally.status500} responses were 500`)
      if (missingSearch.length > 0) {
        failed.push(
          `sentinel: ${missingSearch.length} acknowledged search-cache writes missing from the new master ` +
            `(e.g. ${missingSearch.slice(0, 3).join(", ")})`
        )
      }
      if (missingChat.length > 0) {
        failed.push(
          `sentinel: ${missingChat.length} acknowledged chats never reached Telegram ` +
            `(e.g. ${missingChat.slice(0, 3).join(", ")})`
        )
      }
      if (!newMaster.every((port) => port === replica.port)) {
        failed.push(`sentinel: the sentinels name ${newMaster.join(", ")}, not the replica ${replica.port}`)
      }
      if (!followed) failed.push("sentinel: the service never logged that it followed the master to the replica")
      return {
        rows,
        failed,
        figures: {
          requests: tally.requests,
          failed: tally.failed,
          status500: tally.status500,
          lost: missingSearch.length + missingChat.length,
          duplicates: duplicated.length,
          promotedMs: promoted ?? -1,
          writesBackMs: writesBack ?? -1,
          replayedMs: replayed ?? -1,
          clientRecoveryMs: clientRecovery === null ? -1 : Number(clientRecovery[1])
        },
        notes: [
          `${rate} requests/s (30% chat, 70% search, every one unique); a master, one replica and three sentinels ` +
          `(quorum 2, down-after-milliseconds ${downAfterMillis}, failover-timeout 2000) on loopback ports; the ` +
          `service on REDIS_SENTINELS; the master SIGKILLed after ${settleMs / 1000} s of load, the load kept on ` +
          `${settleMs / 1000} s after the writes were back.`,
          "\"A new write landing\": a fresh search each 100 ms until its answer is in the promoted replica's keys. " +
          "Acknowledged writes: every search answered by Exa or Tavily (written to Redis before the kill, journaled " +
          "on disk and replayed during and after the failover) must be on the new master at the end; every " +
          "acknowledged chat's reply must reach the (simulated) Telegram. Redis replicates asynchronously: a write " +
          "the master acknowledged but had not yet sent to the replica when it died is lost, and counted here."
        ]
      }
    })
}
