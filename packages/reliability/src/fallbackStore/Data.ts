/**
 * The writes of the FallbackStore scenarios: version `n` goes to key `k<n mod keys>` with a value that names `n`
 * and whose every byte is a function of `n`, of a size from a few bytes to 64 KiB (so that a kill lands inside
 * the writing of a large entry too): a torn or mixed entry cannot pass for a valid one.
 */

export const key = (n: number, keys: number): string => `k${n % keys}`

const sizes = [8, 300, 4096, 65_536, 1200, 20_000]

export const value = (n: number): string => {
  const size = sizes[n % sizes.length]!
  const unit = `${n}:${(n * 2654435761) >>> 0};`
  return `v${n}|${unit.repeat(Math.ceil(size / unit.length)).slice(0, size)}`
}

/** The version a value names, or undefined when it is not one `value` gives. */
export const versionOf = (stored: string): number | undefined => {
  const match = /^v(\d+)\|/.exec(stored)
  if (match === null) return undefined
  const n = Number(match[1])
  return value(n) === stored ? n : undefined
}
