"""The paper's experiments that combine parts: Table 2 (the rank study's recipe, trained with :mod:`rexnet.train`).

It sits above ``train`` and ``rank`` so that neither imports the other.
"""
