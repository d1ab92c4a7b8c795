"""Task classification for the router: keyword/regex rules first, then static-embedding similarity.

    classifier = classifying.build_classifier(config)      # once per config load
    result = classifier.classify(messages)                 # per request: ~0.3 ms, no I/O
    result.task, result.score, result.reason

See docs/routing.md for how the score is made and how accurate the built-in presets are.
"""

from __future__ import annotations

from flotilla.router.classifying.classifiers import Classification, Classifier, build_classifier
from flotilla.router.classifying.configs import preset_config

__all__ = ["Classification", "Classifier", "build_classifier", "preset_config"]
