"""The label, gate and condition names of Kueue's API that kubesim's Kueue reads and writes
(the same strings gpulab's hub uses from ``hub/workload/labels.py``; kubesim imports no hub
code, so they are spelled here once for kubesim)."""

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
POD_GATE = "kueue.x-k8s.io/admission"
MANAGED_LABEL = "kueue.x-k8s.io/managed"
POD_FINALIZER = "kueue.x-k8s.io/managed"

QUOTA_RESERVED = "QuotaReserved"
ADMITTED = "Admitted"
EVICTED = "Evicted"
PREEMPTED = "Preempted"
REQUEUED = "Requeued"
FINISHED = "Finished"
