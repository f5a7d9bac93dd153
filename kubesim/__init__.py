"""gpulab.kubesim"""
