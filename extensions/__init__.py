"""gpulab.extensions"""
