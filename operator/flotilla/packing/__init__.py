"""Memory-budget packing: which opted-in models of a fleet share a pod. Pure (no Kubernetes client), so
the operator, `flotilla render` and tests compute the same plan.

    memory      what one model needs: weights, KV cache, runtime overhead (the formula: docs/packing.md)
    budgets     how much memory one pack pod has, per accelerator kind, and the safety margin
    binpacking  first-fit-decreasing over sizes, deterministic
    plans       a fleet's plan: group by (pack, accelerator kind), pack each group, report what cannot fit

The plan is what status.packs and `flotilla render` show, and what `flotilla.render.packs` renders: one
Deployment per planned pod (the `ray` runtime), instead of one per packed model.
"""
