import { Effect, Metric } from "effect"

/** The value of the counter or gauge `id` whose attributes include `attributes`, in the registry in context. */
export const metricValue = (id: string, attributes: Record<string, string>) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v))
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))
