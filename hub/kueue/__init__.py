"""gpulab's side of Kueue: the policy rendered as Kueue objects and kept in sync.

``names`` (pure: the objects' names), ``render`` (pure: policy -> objects), ``sync`` (apply
through ``hub/kube``: the policy's objects on reload, a user's queues on demand), ``detect``
(does the cluster serve Kueue's API?). docs/scheduling.md explains the mapping.
"""
