"""Promotion of candidate models: sum the routers' shadow counters, decide, report.

``tallies`` (pure) adds each router replica's counter increases to a candidate's totals; ``deciding``
(pure) applies the spec's rule and builds ``status.candidates``; ``collecting`` reads the routers and writes
the status. The kopf timer that drives them, the Events and the re-render on a decision are in
``flotilla.controller``.
"""
