/**
 * Answers what Node's HTTP parser rejects (a malformed request line, headers over the limit, bytes after a request
 * that frame nothing) with a problem body, and closes the connection without resetting it.
 *
 * Node's default `clientError` handling writes a bare status line and destroys the socket at once. Bytes the client
 * is still sending then make the kernel reset the connection, which discards the answer before the client reads it;
 * and when a response to the request before has started (a stream), nothing is written and what it wrote is lost
 * with the socket.
 *
 * @internal
 */
import type * as Http from "node:http"
import type * as Stream from "node:stream"

// Long enough for a client on a fast link to finish sending and read the answer; then the socket goes regardless.
const lingerMillis = 2000

const answers: Record<string, readonly [status: number, title: string, detail: string]> = {
  HPE_HEADER_OVERFLOW: [431, "Request Header Fields Too Large", "The request line and headers exceed the limit"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout", "The request did not arrive in time"]
}

const malformed = [400, "Bad Request", "The request is not valid HTTP/1.1"] as const

/**
 * The raw response to a rejected request; with `withBody: false` its headers only (what a HEAD is answered with).
 *
 * @internal
 */
export const response = (code: string | undefined, withBody: boolean): string => {
  const [status, title, detail] = (code === undefined ? undefined : answers[code]) ?? malformed
  const body = JSON.stringify({ type: "about:blank", title, status, detail })
  const head = `HTTP/1.1 ${status} ${title}\r\nconnection: close\r\n`
  return withBody
    ? `${head}content-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    : `${head}content-length: 0\r\n\r\n`
}

// A body may only follow when the request is known not to be a HEAD (its client would read the body as a second
// response): the failing chunk must be the connection's first, which starts with the method.
const bodyAllowed = (error: NodeJS.ErrnoException & { readonly rawPacket?: unknown }, socket: Socket): boolean => {
  const raw = error.rawPacket
  return Buffer.isBuffer(raw) && socket.bytesRead === raw.length && raw.subarray(0, 5).toString("latin1") !== "HEAD "
}

interface Socket extends Stream.Duplex {
  readonly bytesRead?: number | undefined
  readonly _httpMessage?: { readonly headersSent?: boolean } | null | undefined
}

/** @internal */
export const install = <S extends Http.Server>(server: S): S => {
  // Node raises it again for every chunk its parser is given after the error: answer once.
  const handled = new WeakSet<Stream.Duplex>()
  server.on("clientError", (error: NodeJS.ErrnoException, duplex: Stream.Duplex) => {
    const socket = duplex as Socket
    if (handled.has(socket)) return
    handled.add(socket)
    // Writes of a response still under way fail once the socket is ended; nobody is left to tell.
    socket.on("error", () => {})
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy()
      return
    }
    // A response under way keeps its bytes (flushed by `end`); only an idle connection gets the answer.
    const inFlight = socket._httpMessage?.headersSent === true
    socket.end(inFlight ? undefined : response(error.code, bodyAllowed(error, socket)))
    // Keep reading what the client still sends, so that closing does not reset the connection.
    socket.resume()
    const timer = setTimeout(() => socket.destroy(), lingerMillis)
    timer.unref()
    socket.once("close", () => clearTimeout(timer))
  })
  return server
}
