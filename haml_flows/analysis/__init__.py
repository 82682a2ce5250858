"""Analysis of stored HAML runs: the paper's figures from the database.

Modules
-------
timeline    frames of a run in time order (AIMD then MLP-MD per cycle), streamed
            one segment at a time, with absolute simulated time
rdf         partial radial distribution functions
bonds       bond counts for species pairs with cutoffs
products    reaction products (Li2S, LiCl, Li3P, ...) from coordination
similarity  structure similarity in [0, 1] from local-environment fingerprints
transport   Li mean-square displacement, diffusion coefficient, Nernst-Einstein
cost        CPU cost per simulated ps of HAML and of AIMD, speed-up
report      one streamed pass over a run, PNG figures, HTML page, JSON summary
"""

from haml_flows.analysis.bonds import DEFAULT_CUTOFFS, bond_counts
from haml_flows.analysis.cost import cost_summary
from haml_flows.analysis.products import DEFAULT_PRODUCTS, find_products
from haml_flows.analysis.rdf import partial_rdf
from haml_flows.analysis.similarity import structure_similarity
from haml_flows.analysis.timeline import Frame, run_timeline
from haml_flows.analysis.transport import (
    MsdAccumulator,
    diffusion_coefficient,
    nernst_einstein_conductivity,
)

__all__ = [
    "DEFAULT_CUTOFFS",
    "DEFAULT_PRODUCTS",
    "Frame",
    "MsdAccumulator",
    "bond_counts",
    "cost_summary",
    "diffusion_coefficient",
    "find_products",
    "nernst_einstein_conductivity",
    "partial_rdf",
    "run_timeline",
    "structure_similarity",
]
