/**
 * Typechecks every example: each ```ts block in a JSDoc comment of `packages/<name>/src/**` (but not `internal/`,
 * which exports nothing public), and each ```ts block of `README.md` and `docs/*.md`, is written as its own module
 * and the lot is compiled by one `tsc` program with the options of `tsconfig.base.json` (strict, noEmit). An unused
 * import fails, an unused local does not: examples declare things to show them. Failures are reported at the line
 * of the source file or page that holds them. A page's block whose fence follows
 * `<!-- check-examples: skip (the reason) -->` is left out (keep that for fragments that cannot be whole modules).
 *
 *   node scripts/check-examples.ts          # what `pnpm check:examples` runs
 *   node scripts/check-examples.ts --keep   # also keeps the generated modules for a look
 *
 * The modules go to `node_modules/.cache/jsdoc-examples/run-<pid>`, beside a `node_modules` of links to every
 * workspace package (and to their dependencies), so an example imports `@effect-resilience/core` or
 * `@effect/platform-node` exactly as a user of the packages would, through their `exports`. The packages are
 * project references, so the examples compile against their declarations (`tsc -b` brings those up to date first,
 * as `pnpm check` does).
 */
import { spawnSync } from "node:child_process"
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import {
  type Example,
  examplesOf,
  importedPackages,
  mapDiagnostic,
  markdownExamplesOf,
  parseDiagnostic
} from "./jsdocExamples.ts"

const root = resolve(import.meta.dirname, "..")
// One folder per run: engineers and CI may run the check at the same time.
const out = join(root, "node_modules", ".cache", "jsdoc-examples", `run-${process.pid}`)
const keep = process.argv.includes("--keep")

const say = (line: string) => process.stdout.write(`${line}\n`)
const fail = (line: string): never => {
  process.stderr.write(`check-examples: ${line}\n`)
  process.exit(2)
}

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "internal" ? [] : sourceFiles(path)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : []
  })

interface WorkspacePackage {
  readonly dir: string
  readonly name: string
  readonly dependencies: ReadonlyArray<string>
}

const workspacePackage = (dir: string): WorkspacePackage => {
  const json = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
  return { dir, name: json.name, dependencies: Object.keys(json.dependencies ?? {}) }
}

// The packages a set of packages needs: the workspace packages among them, and those they depend on, and so on.
const withDependencies = (
  workspace: ReadonlyArray<WorkspacePackage>,
  names: Iterable<string>
): Array<WorkspacePackage> => {
  const needed = new Map<string, WorkspacePackage>()
  const queue = [...names]
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    const found = workspace.find((pkg) => pkg.name === name)
    if (found === undefined || needed.has(name)) continue
    needed.set(name, found)
    queue.push(...found.dependencies)
  }
  return [...needed.values()]
}

// A `node_modules` where every workspace package and every dependency of one resolves, as in a user's project.
const linkPackages = (workspace: ReadonlyArray<WorkspacePackage>): void => {
  const modules = join(out, "node_modules")
  const link = (name: string, target: string) => {
    const at = join(modules, name)
    if (existsSync(at) || !existsSync(target)) return
    mkdirSync(dirname(at), { recursive: true })
    symlinkSync(target, at, "dir")
  }
  const names = workspace.map((pkg) => pkg.name)
  for (const { dir, name } of workspace) link(name, dir)
  for (const { dir } of workspace) {
    const deps = join(dir, "node_modules")
    if (!existsSync(deps)) continue
    for (const entry of readdirSync(deps)) {
      if (entry.startsWith(".")) continue
      const scoped = entry.startsWith("@") && lstatSync(join(deps, entry)).isDirectory()
      const children = scoped ? readdirSync(join(deps, entry)).map((child) => `${entry}/${child}`) : [entry]
      for (const child of children) if (!names.includes(child)) link(child, join(deps, child))
    }
  }
}

const main = () => {
  const packagesDir = join(root, "packages")
  const packageDirs = readdirSync(packagesDir)
    .map((name) => join(packagesDir, name))
    .filter((dir) => existsSync(join(dir, "package.json")) && existsSync(join(dir, "src")))
  // The examples' packages too: a page may show a test of one (`docs/testing.md`).
  const workspace = ["packages", "examples"].flatMap((folder) =>
    readdirSync(join(root, folder))
      .map((name) => join(root, folder, name))
      .filter((dir) => existsSync(join(dir, "package.json")))
      .map(workspacePackage)
  )
  const pages = [
    "README.md",
    ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).sort()
      .map((name) => `docs/${name}`)
  ]
  let examples: Array<Example>
  let blocks: Array<Example>
  try {
    examples = packageDirs.flatMap((dir) =>
      sourceFiles(join(dir, "src")).sort().flatMap((file) =>
        examplesOf(relative(root, file), readFileSync(file, "utf8"))
      )
    )
    blocks = pages.flatMap((page) => markdownExamplesOf(page, readFileSync(join(root, page), "utf8")))
  } catch (error) {
    return fail(String(error))
  }
  if (examples.length === 0) fail("no examples found")
  const skipped = blocks.filter((block) => block.skip !== undefined)
  const checked = blocks.filter((block) => block.skip === undefined)

  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  linkPackages(workspace)

  // The example opening at line 337 of `packages/core/src/FallbackStore.ts` -> `core/FallbackStore.L337.ts`; the
  // block at line 131 of `docs/breakers.md` -> `pages/docs/breakers.L131.ts`.
  const byModule = new Map<string, Example>()
  const write = (module: string, example: Example) => {
    if (byModule.has(module)) fail(`${example.source}:${example.fence}: ${module} is generated twice`)
    byModule.set(module, example)
    mkdirSync(dirname(join(out, module)), { recursive: true })
    writeFileSync(join(out, module), `${example.code.join("\n")}\n`)
  }
  for (const example of examples) {
    const [, pkg, ...rest] = example.source.split("/")
    write(`${pkg}/${rest.slice(1).join("/").replace(/\.ts$/, "")}.L${example.fence}.ts`, example)
  }
  for (const block of checked) write(`pages/${block.source.replace(/\.md$/, "")}.L${block.fence}.ts`, block)

  // The packages that have examples, and those the pages' examples import (with what those need in turn).
  const imported = withDependencies(workspace, checked.flatMap((block) => importedPackages(block.code)))
  const tsconfig = {
    extends: relative(out, join(root, "tsconfig.base.json")),
    files: [...byModule.keys()],
    // Their builds are what the examples compile against; the examples' own packages are not built (noEmit).
    references: packageDirs
      .filter((dir) =>
        examples.some((example) => join(root, example.source).startsWith(`${dir}/`)) ||
        imported.some((pkg) => pkg.dir === dir)
      )
      .map((dir) => ({ path: relative(out, dir) })),
    compilerOptions: {
      composite: false,
      incremental: false,
      noEmit: true,
      rootDir: ".",
      declarationMap: false,
      sourceMap: false,
      rewriteRelativeImportExtensions: false,
      allowImportingTsExtensions: true,
      // On for unused imports; `mapDiagnostic` drops the unused locals.
      noUnusedLocals: true,
      noUnusedParameters: false,
      types: ["node"]
    }
  }
  writeFileSync(join(out, "tsconfig.json"), `${JSON.stringify(tsconfig, null, 2)}\n`)

  const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
  const run = spawnSync(process.execPath, [tsc, "-b", join(out, "tsconfig.json"), "--pretty", "false"], {
    cwd: root,
    encoding: "utf8"
  })
  if (!keep) rmSync(out, { recursive: true, force: true })
  if (run.error !== undefined || run.status === null) fail(`could not run tsc: ${run.error?.message ?? run.signal}`)

  const failed = new Set<Example>()
  // Other output (the packages' own errors, if any) first, as tsc gave it; then the examples' errors by file and line.
  const other: Array<string> = []
  const mapped: Array<{ readonly example: Example; readonly line: number; readonly lines: Array<string> }> = []
  let last: Array<string> = other
  for (const text of `${run.stdout}${run.stderr}`.split("\n")) {
    if (text.trim() === "") continue
    const diagnostic = parseDiagnostic(text)
    if (diagnostic === undefined) {
      // A message's continuation lines are indented under it.
      ;(/^\s/.test(text) ? last : other).push(text)
      continue
    }
    const example = byModule.get(relative(out, resolve(root, diagnostic.file)))
    if (example === undefined) {
      other.push(text)
      last = other
      continue
    }
    const message = mapDiagnostic(example, diagnostic)
    if (message === undefined) {
      last = [] // its continuation lines go too
      continue
    }
    failed.add(example)
    last = [message]
    mapped.push({ example, line: diagnostic.line, lines: last })
  }
  mapped.sort((a, b) =>
    a.example.source.localeCompare(b.example.source) || a.example.fence - b.example.fence || a.line - b.line
  )
  for (const line of [...other, ...mapped.flatMap((found) => found.lines)]) say(line)

  // "475 JSDoc examples (38 files)", or when some fail "2 of 475 JSDoc examples (38 files)"
  const tally = (of: ReadonlyArray<Example>, kind: string, unit: string) => {
    const failing = failed.size > 0 ? `${of.filter((example) => failed.has(example)).length} of ` : ""
    return `${failing}${of.length} ${kind} examples (${new Set(of.map((example) => example.source)).size} ${unit})`
  }
  const tallies = `${tally(examples, "JSDoc", "files")} and ${tally(checked, "Markdown", "pages")}`
  // tsc also fails on the unused locals dropped above: the check fails on what it reported.
  if (run.status !== 0 && (failed.size > 0 || other.length > 0)) {
    say(`${tallies} fail to typecheck`)
    const perFile = new Map<string, number>()
    for (const example of failed) perFile.set(example.source, (perFile.get(example.source) ?? 0) + 1)
    for (const [file, count] of [...perFile].sort()) say(`  ${file}: ${count}`)
    process.exit(1)
  }
  say(`${tallies} typecheck`)
  for (const block of skipped) say(`  skipped: ${block.source}:${block.fence} (${block.skip})`)
}

main()
