"""The workload core: what a gpulab pod is and who may run it, for servers and jobs alike.

* :mod:`.labels`: every label and annotation key gpulab writes or reads;
* :mod:`.security`: the restricted security contexts;
* :mod:`.pod`: the parts of a pod (servers and jobs alike) and the home claim;
* :mod:`.holdings`: how the GPUs and job slots that pods and Jobs hold are counted
  (:class:`~.holdings.GpuUsage`);
* :mod:`.admission`: who may run what, now: one check for servers and jobs.
"""
