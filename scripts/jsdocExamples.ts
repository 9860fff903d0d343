/**
 * The pure parts of `check-examples.ts`: finding the examples in a source file's JSDoc or on a Markdown page, and
 * mapping tsc's diagnostics on the generated modules back to the source.
 */

/** One example: where it is in the source, and its code. */
export interface Example {
  /** The source file (or Markdown page), relative to the workspace root. */
  readonly source: string
  /** The 1-based line of the opening fence. */
  readonly fence: number
  /** The code, one line each, without the JSDoc prefix (`<indent>* `) or the fence's own indentation. */
  readonly code: ReadonlyArray<string>
  /** Per code line, how many characters of prefix were removed. */
  readonly indents: ReadonlyArray<number>
  /** Why the example is left out of the check, when a page says so. */
  readonly skip?: string | undefined
}

// A JSDoc line is `<indent>* <text>`; the prefix is dropped, and code keeps its own indentation after it.
const JSDOC_LINE = /^(\s*\*(?: |$))/
const FENCE_OPEN = /^```(?:ts|typescript)$/
const FENCE_CLOSE = /^```$/

/** The ```ts blocks of the JSDoc comments of `text`; an example still open when its comment ends is an error. */
export const examplesOf = (source: string, text: string): Array<Example> => {
  const lines = text.split("\n")
  const examples: Array<Example> = []
  let inDoc = false
  let open: { fence: number; code: Array<string>; indents: Array<number> } | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (!inDoc) {
      if (/^\s*\/\*\*/.test(line) && !line.includes("*/")) inDoc = true
      continue
    }
    if (line.includes("*/")) {
      if (open !== undefined) throw new Error(`${source}:${open.fence}: the example is not closed in its comment`)
      inDoc = false
      continue
    }
    const prefix = JSDOC_LINE.exec(line)?.[1] ?? ""
    const body = line.slice(prefix.length)
    if (open === undefined) {
      if (FENCE_OPEN.test(body.trim())) open = { fence: i + 1, code: [], indents: [] }
    } else if (FENCE_CLOSE.test(body.trim())) {
      examples.push({ source, ...open })
      open = undefined
    } else {
      open.code.push(body)
      open.indents.push(prefix.length)
    }
  }
  return examples
}

// On a page, a fence may be indented (in a list item) and opens with three or more backticks or tildes; it closes
// with at least as many of the same character and nothing else.
const MARKDOWN_FENCE = /^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/
// The line before a block's fence (blank lines aside) that leaves it out of the check; the reason is required.
const SKIP = /^<!-- check-examples: skip \(([^)]+)\) -->$/

/**
 * The ```ts blocks of a Markdown page; a block whose fence follows `<!-- check-examples: skip (why) -->` (blank
 * lines aside) carries its reason in `skip`. A misspelt marker, or a block still open at the end of the page, is an
 * error.
 */
export const markdownExamplesOf = (source: string, text: string): Array<Example> => {
  const lines = text.split("\n")
  const examples: Array<Example> = []
  let open: {
    fence: number
    marker: string
    indent: number
    ts: boolean
    skip: string | undefined
    code: Array<string>
    indents: Array<number>
  } | undefined
  let before = "" // the last non-blank line outside a block
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (open === undefined) {
      const fence = MARKDOWN_FENCE.exec(line)
      if (fence === null) {
        if (line.trim().startsWith("<!-- check-examples") && !SKIP.test(line.trim())) {
          throw new Error(`${source}:${i + 1}: write the marker as <!-- check-examples: skip (the reason) -->`)
        }
        if (line.trim() !== "") before = line.trim()
        continue
      }
      const [, indent, marker, info] = fence
      const ts = info === "ts" || info === "typescript"
      const skip = SKIP.exec(before)?.[1]
      open = { fence: i + 1, marker, indent: indent.length, ts, skip, code: [], indents: [] }
      continue
    }
    const trimmed = line.trim()
    if (trimmed.startsWith(open.marker) && /^(`+|~+)$/.test(trimmed)) {
      const { code, fence, indents, skip } = open
      if (open.ts) {
        examples.push(skip === undefined ? { source, fence, code, indents } : { source, fence, code, indents, skip })
      }
      open = undefined
      before = ""
      continue
    }
    // The fence's indentation is dropped from each line, as far as the line has it.
    const indent = Math.min(open.indent, /^ */.exec(line)![0].length)
    open.code.push(line.slice(indent))
    open.indents.push(indent)
  }
  if (open !== undefined) throw new Error(`${source}:${open.fence}: the code block is not closed`)
  return examples
}

/** The packages an example imports (`effect` for `effect/testing`), in order, without relative and `node:` ones. */
export const importedPackages = (code: ReadonlyArray<string>): Array<string> => {
  const names = new Set<string>()
  const specifiers = /\b(?:from|import)\s*\(?\s*["']([^"']+)["']/g
  for (const [, specifier] of code.join("\n").matchAll(specifiers)) {
    if (/^(?:\.|\/|node:)/.test(specifier)) continue
    names.add(specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/"))
  }
  return [...names]
}

/** "declared but never read", "all imports unused", "declared but never used", "all destructured elements unused" */
const UNUSED = new Set(["TS6133", "TS6192", "TS6196", "TS6198"])

/** Whether line `index` (0-based) of an example is part of an import declaration, which may span lines. */
export const isImportLine = (code: ReadonlyArray<string>, index: number): boolean => {
  for (let i = 0; i <= index; i++) {
    if (!/^import\b/.test(code[i])) continue
    // The declaration ends at its module specifier: `... from "x"` or `import "x"`.
    let end = i
    while (end < code.length - 1 && !/["'];?\s*$/.test(code[end])) end++
    if (index <= end) return true
    i = end
  }
  return false
}

/** A diagnostic of tsc (`--pretty false`): `file(line,column): error TS1234: message`. */
export interface Diagnostic {
  readonly file: string
  readonly line: number
  readonly column: number
  readonly code: string
  readonly text: string
}

const DIAGNOSTIC = /^(.+?)\((\d+),(\d+)\): (?:error|warning) (TS\d+): .*$/

/** A diagnostic line's parts, or `undefined` for another line (a message's continuation, a summary). */
export const parseDiagnostic = (text: string): Diagnostic | undefined => {
  const match = DIAGNOSTIC.exec(text)
  if (match === null) return undefined
  const [, file, line, column, code] = match
  return { file, line: Number(line), column: Number(column), code, text }
}

/**
 * A diagnostic on an example's module, as a message at the source's line and column; `undefined` for an unused
 * name that is not an import (examples declare things to show them).
 */
export const mapDiagnostic = (example: Example, diagnostic: Diagnostic): string | undefined => {
  const offset = diagnostic.line - 1
  if (UNUSED.has(diagnostic.code) && !isImportLine(example.code, offset)) return undefined
  const line = example.fence + 1 + offset
  const column = diagnostic.column + (example.indents[offset] ?? 0)
  const message = diagnostic.text.slice(diagnostic.text.indexOf("): ") + 3)
  return `${example.source}:${line}:${column} (example at line ${example.fence}): ${message}`
}
