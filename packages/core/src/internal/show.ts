/**
 * Shows a value of the user's (what a check, an action or a sink failed with) as text, for messages and logs.
 *
 * @internal
 */
import * as Formatter from "effect/Formatter"

/**
 * A string as it is, anything else formatted. Not `String`: it throws on a null-prototype object (a parsed query
 * string, a GraphQL error's extensions), which would end the fiber describing it, and says "[object Object]" of a
 * plain one.
 *
 * @internal
 */
export const show = (value: unknown): string => typeof value === "string" ? value : Formatter.format(value)
