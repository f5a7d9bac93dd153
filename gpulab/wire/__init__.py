"""What the hub side and the notebook side say to each other, declared once for both.

Hub code (``gpulab.hub``) and notebook code (``gpulab.extensions``) never import each other;
the types and names they exchange live here, free of either side's dependencies:

* :mod:`gpulab.wire.activity`: the activity report a server's extension posts to the culler;
* :mod:`gpulab.wire.jobs`: a job's states as the gateway answers them;
* :mod:`gpulab.wire.runner`: the contract between a job's pod and ``gpulab-job-runner``.
"""
