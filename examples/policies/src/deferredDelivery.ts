import { CircuitBreaker, DeferredDelivery, FallbackStore } from "@effect-resilience/core"
import { Data, Effect, Schema } from "effect"

class TelegramDown extends Data.TaggedError("TelegramDown") {}

const Reply = Schema.Struct({ chatId: Schema.Number, text: Schema.String })

// The Telegram API: down for its first three calls. Like any consumer of an at-least-once queue, it drops a
// message whose idempotency key it has already seen.
const telegramApi = () => {
  let calls = 0
  const seen = new Set<string>()
  const chat: Array<string> = []
  const sendMessage = (reply: typeof Reply.Type, idempotencyKey: string) =>
    Effect.suspend(() => {
      if (++calls <= 3) return Effect.fail(new TelegramDown())
      if (!seen.has(idempotencyKey)) {
        seen.add(idempotencyKey)
        chat.push(reply.text)
      }
      return Effect.void
    })
  return { sendMessage, chat }
}

export const program = Effect.gen(function*() {
  const telegram = telegramApi()
  const breaker = yield* CircuitBreaker.make({
    name: "telegram",
    trip: CircuitBreaker.consecutive(3),
    openDuration: "30 seconds"
  })
  const replies = yield* DeferredDelivery.make({
    name: "telegram",
    schema: Reply,
    sink: (reply, delivery) => telegram.sendMessage(reply, delivery.key),
    breaker,
    // In memory for the example. On disk, `FallbackStore.make({ directory: ".data/telegram" })` (with
    // `NodeServices.layer`), a reply acknowledged as queued survives a crash and goes out after the restart.
    store: yield* FallbackStore.makeMemory()
  })

  // Telegram fails: the first reply is queued, the others queue behind it, in order.
  const receipts = yield* Effect.forEach(
    ["Looking into it", "Found 3 results", "Here they are"],
    (text, i) => replies.send({ chatId: 42, text }, { key: `update-1001/${i}` })
  )
  // The drainer's retries open the breaker; 30 seconds later its probe goes through, and the rest follow.
  yield* replies.awaitEmpty
  return { receipts: receipts.map((r) => r._tag), chat: telegram.chat, depth: (yield* replies.snapshot).depth }
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log)
// { receipts: ["Queued", "Queued", "Queued"], chat: ["Looking into it", "Found 3 results", "Here they are"], depth: 0 }
