"""gpulab.hub"""
