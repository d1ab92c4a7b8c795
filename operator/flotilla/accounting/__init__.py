"""Cloud spend per API key, aggregated by the operator from every router replica (see ``ledgers``)."""
