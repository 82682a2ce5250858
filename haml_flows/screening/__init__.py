"""Screens on FireWorks: bulk submission, progress and ranked results.

- ``submit``: expand a screen file, build every candidate's flow, add the new
  ones to the LaunchPad with their metadata (idempotent by spec hash);
- ``status``: workflows by state, cycles and simulated ps per candidate,
  failures with their reason;
- ``ranking``: per-candidate similarity, bond-count changes and cost, ranked
  and exported as CSV or JSON;
- ``collections``: where screen documents live and the indexes queries use.
"""
