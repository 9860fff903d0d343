// @ts-check
/**
 * Names each module as it is imported (`@effect-resilience/core/CircuitBreaker`, not `core/src/CircuitBreaker`) and
 * gives it its file's first JSDoc block as its comment: the house style opens each module with one, without the
 * `@module` tag TypeDoc looks for.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Comment, Converter, ReflectionKind } from "typedoc"

const packages = join(import.meta.dirname, "..")

/** The first `/** ... *\/` block of `file`, as markdown, without its block tags (`@since`). */
const moduleComment = (file) => {
  const match = /^\s*\/\*\*([\s\S]*?)\*\//.exec(readFileSync(file, "utf8"))
  if (match === null) return undefined
  const lines = match[1].split("\n").map((line) => line.replace(/^\s*\* ?/, ""))
  const end = lines.findIndex((line) => /^@\w+/.test(line))
  const text = lines.slice(0, end === -1 ? undefined : end).join("\n").trim()
  return text === "" ? undefined : text
}

/** @param {import("typedoc").Application} app */
export const load = (app) => {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const reflection of context.project.getReflectionsByKind(ReflectionKind.Module)) {
      const [pkg, src, ...rest] = reflection.name.split("/")
      if (src !== "src" || rest.length === 0) continue
      const modulePath = rest.join("/")
      const text = moduleComment(join(packages, pkg, "src", `${modulePath}.ts`))
      reflection.name = `@effect-resilience/${pkg}/${modulePath}`
      if (text !== undefined && reflection.comment === undefined) {
        reflection.comment = new Comment([{ kind: "text", text }])
      }
    }
  })
}
