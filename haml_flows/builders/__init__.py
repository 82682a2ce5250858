"""Builders of the paper's interface models.

``argyrodite`` orders bulk Li6PS5Cl, ``doping`` substitutes dopants by a site
rule, ``slabs`` cuts bcc Li slabs, ``interfaces`` matches Li onto the
argyrodite with pymatgen's coherent-interface tools, and ``electrolyte``
packs LiFSI + DME on a Li slab with Packmol.
"""
