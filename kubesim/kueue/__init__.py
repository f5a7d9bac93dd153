"""kubesim's Kueue: the ``kueue.x-k8s.io`` API served from the upstream CRD schemas, and the
subset of Kueue's controllers gpulab relies on (see ``docs/kubesim-api.md``).

``core`` is the pure scheduling engine; ``controller`` connects it to kubesim's store.
"""
