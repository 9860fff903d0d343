/**
 * A raw HTTP/1.1 client over `node:http` for the fuzzer: it sends the path, method and headers exactly as
 * generated (fetch would normalise the path, refuse some methods and headers, and hide repeated headers), reads at
 * most `maxBody` bytes, and closes streams (SSE) after their first bytes.
 */
import { Effect } from "effect"
import { Agent, request as httpRequest } from "node:http"

export interface RawRequest {
  readonly method: string
  readonly path: string
  readonly headers: Record<string, string | ReadonlyArray<string>>
  readonly body?: string | Uint8Array | undefined
}

export type RawResponse =
  | {
    readonly _tag: "Response"
    readonly status: number
    readonly headers: Record<string, string | ReadonlyArray<string> | undefined>
    readonly body: string
  }
  /** The client refused to send it (an invalid header or path for node:http): not a server outcome. */
  | { readonly _tag: "ClientRefused"; readonly message: string }
  /** Reset, closed or timed out without an answer. */
  | { readonly _tag: "NoAnswer"; readonly message: string }

export const makeAgent = (): Agent => new Agent({ keepAlive: false, maxSockets: 16 })

const maxBody = 2 * 1024 * 1024

export const send = (
  agent: Agent,
  port: number,
  req: RawRequest,
  timeoutMs = 10_000
): Effect.Effect<RawResponse> =>
  Effect.callback<RawResponse>((resume) => {
    let done = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const finish = (response: RawResponse) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(Effect.succeed(response))
    }
    let client: ReturnType<typeof httpRequest>
    try {
      client = httpRequest({
        agent,
        host: "127.0.0.1",
        port,
        method: req.method,
        path: req.path,
        headers: req.headers as Record<string, string | Array<string>>
      })
    } catch (error) {
      // node:http validates the method, path and headers synchronously
      finish({ _tag: "ClientRefused", message: String(error) })
      return
    }
    timer = setTimeout(() => {
      client.destroy()
      finish({ _tag: "NoAnswer", message: `no answer within ${timeoutMs} ms` })
    }, timeoutMs)
    client.on("error", (error) => finish({ _tag: "NoAnswer", message: String(error) }))
    client.on("response", (response) => {
      const chunks: Array<Buffer> = []
      let size = 0
      const stream = String(response.headers["content-type"] ?? "").includes("text/event-stream")
      const complete = () =>
        finish({
          _tag: "Response",
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString("utf8")
        })
      if (stream) {
        // An event stream never ends: what the server sent in its first 200 ms is enough to check.
        setTimeout(() => {
          complete()
          client.destroy()
        }, 200)
      }
      response.on("data", (chunk: Buffer) => {
        if (size < maxBody) chunks.push(chunk)
        size += chunk.length
      })
      response.on("end", complete)
      response.on("error", complete)
    })
    if (req.body !== undefined) client.end(req.body)
    else client.end()
  })
