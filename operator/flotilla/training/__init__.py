"""Training Jobs of the distillation loop: start version N of a task's adapter when enough traces were
captured, follow the Job, report it.

``deciding`` (pure) says which Jobs should exist and builds ``status.training``; ``launching`` lists the
fleet's training Jobs, applies the rendered ones (``flotilla.render.training``) and writes the status. The
kopf timer that drives them and the Events are in ``flotilla.controller``.
"""
