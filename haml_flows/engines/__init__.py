"""Engine seams: the reference engine (AIMD), MTP training and MLP-MD.

``commands`` reads each external engine's command inside the job, on the worker.
"""
