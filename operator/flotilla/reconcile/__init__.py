"""Reconciling fleets: planning (pure: desired vs observed), applying (server-side apply, owner references,
pruning) and status (computed from watched child Deployments)."""
