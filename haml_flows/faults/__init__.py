"""Fault handling inside a HAML cycle, in custodian's check/correct style.

- ``collapse``: the MLP-MD collapse guard (NaN or huge forces, atoms closer
  than the training set allows, run-away temperature) with roll-back to the
  last trusted frame;
- ``handlers``: custodian error handlers and job for AIMD segments on the
  reference engine (SCF failures, crashes);
- ``training_fallback``: keeping the previous potential when a training fails;
- ``checks``: the one check/correct loop the guard and the training judge share.
"""
