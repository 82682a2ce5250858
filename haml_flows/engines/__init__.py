"""Engine seams: the reference engine (AIMD), MTP training and MLP-MD."""
