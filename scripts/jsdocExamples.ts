/**
 * The pure parts of `check-examples.ts`: finding the examples in a source file, and mapping tsc's diagnostics on
 * the generated modules back to the source.
 */

/** One example: where it is in the source, and its code. */
export interface Example {
  /** The source file, relative to the workspace root. */
  readonly source: string
  /** The 1-based line of the opening fence. */
  readonly fence: number
  /** The code, one line each, without the JSDoc prefix (`<indent>* `). */
  readonly code: ReadonlyArray<string>
  /** Per code line, how many characters of JSDoc prefix were removed. */
  readonly indents: ReadonlyArray<number>
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
