/**
 * FallbackStore under crashes and corruption (issue 17), checked from outside the writer:
 *
 * - `fallback-store-crash`: a writer process (fallbackStore/writer.ts) SIGKILLed at random moments, again and
 *   again on one directory; after each kill the store is opened afresh and every key must hold its last
 *   acknowledged version (or the one write in flight at the kill), byte for byte: no acknowledged write lost, no
 *   torn entry served.
 * - `fallback-store-corruption`: byte flips, truncations, extensions, zeroed ranges and entries copied under
 *   another key's name, across many entries: every damaged entry is detected (not served, removed), the rest intact.
 * - `fallback-store-lock`: a second store on a locked directory, in this process and in another one, is refused
 *   with `Locked` naming the holder's pid; a clean stop releases the lock, a SIGKILLed holder's lock is taken over.
 */
import { FallbackStore } from "@effect-resilience/core"
import { NodeServices } from "@effect/platform-node"
import { Effect, Exit, Option, References } from "effect"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Child from "./fallbackStore/Child.ts"
import * as Data from "./fallbackStore/Data.ts"
import * as Prng from "./fuzz/Prng.ts"
import * as Harness from "./Harness.ts"
import { model } from "./model.ts"
import { none, type Result, type Row, type Scenario } from "./Scenario.ts"

const lockFile = ".fallback-store.lock"

const isEntry = (name: string) => /^[kh][0-9a-f]+$/.test(name)

/** Runs `f` with a file store opened on `directory` in this process, closed afterwards. */
const withStore = <A, E>(directory: string, f: (store: FallbackStore.FallbackStore) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(FallbackStore.make({ directory }), f)).pipe(
    // The store warns about each corrupt entry and each stale lock it takes over: expected here, by the hundred.
    Effect.provideService(References.MinimumLogLevel, "Error"),
    Effect.provide(NodeServices.layer)
  )

// -----------------------------------------------------------------------------
// crash
// -----------------------------------------------------------------------------

export const crash: Scenario = {
  name: "fallback-store-crash",
  title: "FallbackStore: a writer SIGKILLed at random moments, every acknowledged write accounted for",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const seed = Prng.seed()
      const prng = Prng.make(seed ^ 0x5eed)
      const rounds = ctx.quick ? 20 : 100
      const keys = 64
      const directory = join(ctx.workDir, "crash-store")
      const failures: Array<string> = []
      // The newest version of each key known durable: acknowledged, or read back after a kill.
      const latest = new Map<string, number>()
      let next = 0
      let acked = 0
      let killedBeforeReady = 0
      let inFlightFound = 0
      let tmpLeft = 0
      let tornOnDisk = 0
      const started = yield* Harness.now
      for (let round = 0; round < rounds; round++) {
        // Mostly while writing (0-600 ms after the store is open), sometimes while it starts (lock, index, sweep).
        const whileWriting = prng.chance(0.8)
        const killAfter = whileWriting ? prng.int(0, 600) : prng.int(20, 900)
        const result = yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* Child.start([directory, "write", String(next), String(keys)])
          if (whileWriting) yield* Effect.ignore(writer.waitFor(/^ready /))
          yield* Effect.sleep(killAfter)
          // A writer that died by itself (a failed write, a module that did not load) would pass with no acks.
          const early = writer.child.exitCode !== null || writer.child.signalCode !== null
          yield* writer.kill("SIGKILL")
          return { lines: writer.lines(), stderr: writer.stderr(), early }
        }))
        if (result.early) {
          failures.push(`round ${round}: the writer exited before the kill: ${result.stderr.slice(-500)}`)
        }
        if (!result.lines.some((l) => l.startsWith("ready "))) killedBeforeReady++
        const acks = result.lines.flatMap((l) => (l.startsWith("ack ") ? [Number(l.slice(4))] : []))
        acks.forEach((n, i) => {
          if (n !== next + i) failures.push(`round ${round}: ack ${n} out of order (expected ${next + i})`)
          latest.set(Data.key(n, keys), n)
        })
        acked += acks.length
        const inFlight = next + acks.length
        const names = existsSync(directory) ? readdirSync(directory) : []
        tmpLeft += names.filter((n) => n.startsWith("tmp-")).length
        const entryFiles = names.filter(isEntry).length
        const read = yield* withStore(directory, (store) =>
          Effect.gen(function*() {
            const size = yield* store.size
            const values = yield* Effect.forEach(
              Array.from({ length: keys }, (_, k) => `k${k}`),
              (key) => Effect.map(store.get(key), (value) => [key, value] as const)
            )
            return { size, values }
          }))
        // Entries removed as corrupt when the store opened: a torn file on disk (never served, but a loss if acked).
        tornOnDisk += entryFiles - read.size
        for (const [key, stored] of read.values) {
          const expected = latest.get(key)
          if (Option.isNone(stored)) {
            if (expected !== undefined) {
              failures.push(`round ${round}: ${key} lost (version ${expected} was acknowledged)`)
            }
            continue
          }
          const version = Data.versionOf(stored.value)
          if (version === undefined) {
            failures.push(`round ${round}: ${key} served a torn or foreign value (${stored.value.slice(0, 40)}…)`)
          } else if (version === inFlight && Data.key(inFlight, keys) === key) {
            // The write in flight at the kill made it to disk: fine, and now the newest of its key.
            inFlightFound++
            latest.set(key, version)
          } else if (expected !== undefined && version < expected) {
            failures.push(`round ${round}: ${key} lost version ${expected} (acknowledged): it holds ${version}`)
          } else if (version !== expected) {
            failures.push(`round ${round}: ${key} holds version ${version}, expected ${expected ?? "none"}`)
          }
        }
        next = inFlight + 1
        yield* ctx.log(
          `fallback-store-crash: round ${round + 1}/${rounds}: ${acks.length} acks, killed ${killAfter} ms after ${
            whileWriting ? "the store opened" : "spawn"
          }`
        )
      }
      const elapsed = yield* Harness.since(started)
      if (acked === 0) failures.push("no write was acknowledged in any round")
      const lost = failures.filter((f) => f.includes("lost")).length
      const torn = failures.filter((f) => f.includes("torn")).length
      const rows: Array<Row> = [
        { metric: "SIGKILLs", value: `${rounds} (${killedBeforeReady} before the store was open)` },
        { metric: "acknowledged writes", value: String(acked) },
        none("acknowledged writes lost", lost),
        none("torn or foreign values served", torn),
        none("other mismatches (a version never written, out-of-order acks)", failures.length - lost - torn),
        { metric: "in-flight write found on disk after the kill", value: `${inFlightFound} of ${rounds}` },
        { metric: "temporary files left by kills (removed at open)", value: String(tmpLeft) },
        none("corrupt entry files found at open", tornOnDisk)
      ]
      if (tornOnDisk !== 0) failures.push(`${tornOnDisk} corrupt entry files found on disk after kills`)
      return {
        rows,
        failed: failures.slice(0, 50),
        figures: {
          seed,
          rounds,
          acked,
          lost,
          torn,
          in_flight_found: inFlightFound,
          tmp_left: tmpLeft,
          elapsed_ms: elapsed
        },
        notes: [
          `${keys} keys, versions overwritten in turn, values of 8 B to 64 KiB whose every byte depends on the version; `
          + `kills 0-600 ms after the store opened (4 in 5) or 20-900 ms after spawn, during startup (seed ${seed}). `
          + `After each kill the store was reopened in the `
          + `suite's process (taking over the stale lock) and every key read back.`
        ]
      } satisfies Result
    })
}

// -----------------------------------------------------------------------------
// corruption
// -----------------------------------------------------------------------------

type Damage = "flip" | "truncate" | "extend" | "zero" | "misplaced"

/** The key stored in an entry file: after the header line, `<key bytes>` bytes (the header's fifth field). */
const keyOf = (content: Buffer): string | undefined => {
  const newline = content.indexOf(10)
  const fields = content.subarray(0, newline).toString("latin1").split(" ")
  const length = Number(fields[4])
  return fields[0] === "FBS1" && Number.isInteger(length)
    ? content.subarray(newline + 1, newline + 1 + length).toString("utf8")
    : undefined
}

// Short keys (file name from the key's hex) and long ones (file name from its SHA-256), unicode among them.
const keyFor = (i: number) => i % 5 === 0 ? `long-${i}-${"ü".repeat(60)}` : i % 7 === 0 ? `名前-${i}` : `c${i}`

export const corruption: Scenario = {
  name: "fallback-store-corruption",
  title: "FallbackStore: byte flips, truncations and misplaced entries detected, the rest intact",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const seed = Prng.seed()
      const prng = Prng.make(seed ^ 0xc0ffee)
      const count = ctx.quick ? 600 : 3000
      const directory = join(ctx.workDir, "corruption-store")
      const failures: Array<string> = []
      const values = new Map(Array.from({ length: count }, (_, i) => [keyFor(i), Data.value(i)] as const))
      yield* withStore(directory, (store) =>
        Effect.forEach(values, ([key, value]) => store.set(key, value), { discard: true }))

      const files = readdirSync(directory).filter(isEntry)
      const byKey = new Map<string, string>()
      for (const name of files) {
        const key = keyOf(readFileSync(join(directory, name)))
        if (key !== undefined) {
          byKey.set(key, name)
        }
      }
      if (byKey.size !== count) {
        failures.push(`expected ${count} entry files, found ${byKey.size}`)
      }
      const damaged = new Map<string, Damage>()
      const kinds = new Map<Damage, number>()
      for (const [key, name] of byKey) {
        if (!prng.chance(0.35)) {
          continue
        }
        const path = join(directory, name)
        const content = readFileSync(path)
        const kind = prng.pick<Damage>(["flip", "flip", "truncate", "extend", "zero", "misplaced"])
        let next: Buffer
        if (kind === "flip") {
          next = Buffer.from(content)
          for (let i = prng.int(1, 4); i > 0; i--) {
            const at = prng.int(0, next.length - 1)
            next[at] = next[at]! ^ prng.int(1, 255)
          }
        } else if (kind === "truncate") {
          next = content.subarray(0, prng.int(0, content.length - 1))
        } else if (kind === "extend") {
          next = Buffer.concat([
            content,
            Buffer.from(Array.from({ length: prng.int(1, 16) }, () =>
              prng.int(0, 255)))
          ])
        } else if (kind === "zero") {
          // A torn page: a range of zeros (values never hold a zero byte, so this always changes the entry).
          next = Buffer.from(content)
          const from = prng.int(0, next.length - 1)
          next.fill(0, from, Math.min(next.length, from + prng.int(1, 4096)))
        } else {
          // Another entry's file under this key's name: a valid entry, of the wrong key.
          const other = [...byKey].find(([k, n]) => n !== name && !damaged.has(k))![1]
          next = readFileSync(join(directory, other))
        }
        writeFileSync(path, next)
        damaged.set(key, kind)
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
      }

      const read = yield* withStore(directory, (store) =>
        Effect.gen(function*() {
          const size = yield* store.size
          const got = yield* Effect.forEach(
            [...values.keys()],
            (key) => Effect.map(store.get(key), (v) => [key, v] as const)
          )
          return { size, got }
        }))
      let served = 0
      let lostIntact = 0
      for (const [key, value] of read.got) {
        if (damaged.has(key)) {
          if (Option.isSome(value)) {
            served++
            failures.push(`damaged entry ${key} (${damaged.get(key)}) served`)
          }
          if (existsSync(join(directory, byKey.get(key)!))) failures.push(`damaged entry ${key} not removed`)
        } else if (Option.isNone(value) || value.value !== values.get(key)) {
          lostIntact++
          failures.push(`intact entry ${key} ${Option.isNone(value) ? "missing" : "changed"}`)
        }
      }
      if (read.size !== count - damaged.size) failures.push(`size ${read.size}, expected ${count - damaged.size}`)
      const rows: Array<Row> = [
        { metric: "entries written", value: String(count) },
        {
          metric: "entries damaged",
          value: `${damaged.size} (${[...kinds.entries()].map(([k, n]) => `${n} ${k}`).join(", ")})`
        },
        none("damaged entries served", served),
        {
          metric: "damaged entries detected and removed",
          value: `${damaged.size - served} of ${damaged.size}`,
          target: "all",
          ok: !failures.some((f) => f.includes("damaged"))
        },
        none("intact entries lost or changed", lostIntact)
      ]
      return {
        rows,
        failed: failures.slice(0, 50),
        figures: { seed, entries: count, damaged: damaged.size, served, intact_lost: lostIntact },
        notes: [
          `Damage (seed ${seed}): 1-4 bytes XORed with a non-zero byte anywhere (header, checksum, key or value), `
          + `truncation to a random length (0 included), 1-16 random bytes appended, a range of up to 4 KiB zeroed, `
          + `or another entry's whole file copied over it. Every fifth key is long (a hashed file name), some are unicode.`
        ]
      } satisfies Result
    })
}

// -----------------------------------------------------------------------------
// lock
// -----------------------------------------------------------------------------

export const lock: Scenario = {
  name: "fallback-store-lock",
  title: "FallbackStore: two processes on one directory, the second refused with Locked",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const directory = join(ctx.workDir, "lock-store")
      const failures: Array<string> = []
      const rows: Array<Row> = []
      const check = (metric: string, value: string, ok: boolean) => {
        rows.push({ metric, value, target: "held", ok })
        if (!ok) failures.push(`${metric}: ${value}`)
      }
      yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* Child.start([directory, "hold"])
        const ready = yield* first.waitFor(/^ready (\d+)$/)
        const holder = Number(ready[1])
        const content = readFileSync(join(directory, lockFile), "utf8").trim()
        check("the lock file names the holder", content, content.split(" ")[1] === String(holder))
        // A second store in this process.
        const here = yield* Effect.exit(withStore(directory, () => Effect.void))
        const error = Exit.isFailure(here) ? Option.getOrUndefined(Exit.findErrorOption(here)) : undefined
        const refusal = error?._tag === "FallbackStoreError" ? error : undefined
        check(
          "a second store in this process is refused",
          refusal === undefined
            ? `not refused with Locked: ${String(error)}`
            : `${refusal.reason}, holder ${refusal.holder}`,
          refusal?.reason === "Locked" && refusal.holder === holder
        )
        // A second writer process.
        const second = yield* Child.start([directory, "hold"])
        const code = yield* second.exited
        const line = second.lines().find((l) => l.startsWith("locked ") || l.startsWith("ready "))
        check(
          "a second writer process is refused",
          `${line ?? "no line"}, exit ${code}`,
          line === `locked ${holder}` && code === 3
        )
        // A clean stop releases the lock.
        yield* first.kill("SIGTERM")
        check(
          "SIGTERM of the holder removes the lock file",
          String(!existsSync(join(directory, lockFile))),
          !existsSync(join(directory, lockFile))
        )
      }))
      const afterClean = yield* Effect.exit(withStore(directory, () => Effect.void))
      check(
        "a store opens after the clean stop",
        Exit.isSuccess(afterClean) ? "opened" : "refused",
        Exit.isSuccess(afterClean)
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const killed = yield* Child.start([directory, "hold"])
        yield* killed.waitFor(/^ready \d+$/)
        yield* killed.kill("SIGKILL")
        check(
          "SIGKILLed holder leaves its lock file",
          String(existsSync(join(directory, lockFile))),
          existsSync(join(directory, lockFile))
        )
      }))
      const afterKill = yield* Effect.exit(withStore(directory, () => Effect.void))
      check("its stale lock is taken over", Exit.isSuccess(afterKill) ? "opened" : "refused", Exit.isSuccess(afterKill))
      return { rows, failed: failures, figures: { checks: rows.length, failed: failures.length } } satisfies Result
    })
}

/** With the breaker's model test (model.ts), which the runner loads from here. */
export const scenarios: ReadonlyArray<Scenario> = [crash, corruption, lock, model]
